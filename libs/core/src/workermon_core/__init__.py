"""Worker Monitor's shared service kit."""
