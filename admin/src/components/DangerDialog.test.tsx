import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { renderWithProviders } from "../test/utils";
import { DangerDialog } from "./DangerDialog";

describe("DangerDialog", () => {
  it("keeps the confirm button disabled until the exact name is typed", async () => {
    const onConfirm = vi.fn();
    renderWithProviders(<DangerDialog open title="Drain: webhooks" name="webhooks" confirmLabel="Drain" onConfirm={onConfirm} onClose={() => undefined} />);
    const dialog = screen.getByRole("dialog");
    expect(dialog).toBeInTheDocument();
    const confirm = screen.getByRole("button", { name: "Drain" });
    expect(confirm).toBeDisabled();
    const input = screen.getByLabelText("Type the name to confirm");
    await userEvent.type(input, "webhook");
    expect(confirm).toBeDisabled();
    await userEvent.type(input, "s");
    expect(confirm).toBeEnabled();
    await userEvent.type(input, "x");
    expect(confirm).toBeDisabled();
    await userEvent.type(input, "{Backspace}");
    await userEvent.click(confirm);
    expect(onConfirm).toHaveBeenCalledTimes(1);
  });

  it("does not confirm on Enter while the name does not match, and cancels", async () => {
    const onConfirm = vi.fn();
    const onClose = vi.fn();
    renderWithProviders(<DangerDialog open title="Stop w-1" name="w-1" confirmLabel="Stop" onConfirm={onConfirm} onClose={onClose} />);
    await userEvent.type(screen.getByLabelText("Type the name to confirm"), "w-2{Enter}");
    expect(onConfirm).not.toHaveBeenCalled();
    await userEvent.click(screen.getByRole("button", { name: "Cancel" }));
    expect(onClose).toHaveBeenCalled();
  });

  it("shows the server's error", () => {
    renderWithProviders(
      <DangerDialog open title="Clean" name="q" confirmLabel="Clean" error="confirm: must equal the queue name" onConfirm={() => undefined} onClose={() => undefined} />,
    );
    expect(screen.getByText(/must equal the queue name/)).toBeInTheDocument();
  });
});
