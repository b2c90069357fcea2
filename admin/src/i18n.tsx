import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { setFormatLocale } from "./format";
import { enScreens, koScreens } from "./messages";

const en = {
  appName: "Worker Monitor",
  overview: "Overview",
  queues: "Queues",
  workers: "Workers",
  jobs: "Jobs",
  incidents: "Incidents",
  audit: "Audit log",
  language: "Language",
  toggleDark: "Toggle dark mode",
  logout: "Log out",
  live: "Live",
  reconnecting: "Reconnecting",
  username: "Username",
  password: "Password",
  login: "Log in",
  loginTitle: "Sign in to Worker Monitor",
  loginFailed: "Login failed",
  sessionExpired: "Your session has ended. Log in again.",
  retry: "Retry",
  loadFailed: "Could not load the data",
  noData: "No data",
  waiting: "Waiting",
  active: "Active",
  delayed: "Delayed",
  failed: "Failed",
  completed: "Completed",
  workersOnline: "Workers online",
  jobsPerMinute: "Jobs/min",
  successRate: "Success rate (24 h)",
  p95: "p95 (15 min)",
  trends: "Throughput per queue (last hour)",
  noQueues: "No queue has been seen yet. Queues appear once a producer adds a job to BullMQ in the monitored Redis.",
  noWorkers: "No worker has reported yet — see the SDK section of the README to instrument a worker.",
  incidentBanner: "{count} open incident(s)",
  viewIncident: "View",
  name: "Name",
  status: "Status",
  online: "Online",
  offline: "Offline",
  latency: "Latency",
  actions: "Actions",
  details: "Details",
  pause: "Pause",
  resume: "Resume",
  retryFailed: "Retry failed",
  promote: "Promote",
  drain: "Drain",
  clean: "Clean",
  close: "Close",
  cancel: "Cancel",
  confirmName: "Type the name to confirm",
  dangerIntro: "This cannot be undone. Type {name} to confirm.",
  drainText: "Removes every waiting job of queue {name}.",
  includeDelayed: "Also remove delayed jobs",
  cleanText: "Removes finished jobs of queue {name} older than the grace period.",
  cleanState: "Jobs in state",
  grace: "Grace (seconds)",
  limit: "Limit",
  stopText: "Asks worker {name} to finish its jobs and exit.",
  range: "Range",
  throughput: "Throughput",
  backlog: "Backlog",
  processingTime: "Processing time (ms)",
  waitTime: "Wait time (ms)",
  waitP95: "wait p95",
  failuresByCategory: "Failures by category",
  noFailuresInRange: "No failure in this range.",
  activeJobs: "Active jobs",
  concurrency: "Concurrency",
  cpuPercent: "CPU (%)",
  rssMb: "Memory, RSS (MB)",
  customGauges: "Custom gauges",
  workerActivity: "Active jobs (1 h)",
  workerHistory: "Last 24 hours, one point per minute",
  noWorkerHistory: "No history: the worker has not beaten in the last 24 hours.",
  workerDetails: "Worker {name}",
  host: "Host",
  pid: "PID",
  processed: "Processed",
  uptime: "Uptime",
  lastBeat: "Last beat",
  gauges: "Gauges",
  state: "State",
  quiet: "Quiet",
  stop: "Stop",
  workerOffline: "The worker is offline",
  showOffline: "Show offline workers",
  queue: "Queue",
  allStates: "All states",
  search: "Search",
  searchHelp: "Job id, or the start of a job name",
  created: "Created",
  attempts: "Attempts",
  duration: "Duration",
  reason: "Reason",
  noJobs: "No job matches. Change the queue, state or search filters.",
  pickQueue: "Pick a queue to list its jobs.",
  previous: "Previous page",
  next: "Next page",
  page: "Page {page}",
  total: "{count} in total",
  data: "Data",
  returnValue: "Return value",
  logs: "Logs",
  stacktrace: "Stack traces",
  timeline: "Timeline",
  options: "Options",
  truncated: "Cut at the server: the whole value is {size}.",
  showFull: "Show full value",
  expandAll: "Expand",
  job: "Job",
  severity: "Severity",
  type: "Type",
  started: "Started",
  openOnly: "Open only",
  all: "All",
  acknowledge: "Acknowledge",
  resolve: "Resolve",
  note: "Note",
  resolutionNote: "Resolution note",
  noIncidents: "No incident. Incidents open when a rule fires (backlog, failure rate, worker down, slow processing).",
  recommended: "Recommended action",
  time: "Time",
  actor: "Actor",
  role: "Role",
  action: "Action",
  entity: "Entity",
  outcome: "Outcome",
  result: "Result",
  anyAction: "Any action",
  noAudit: "No audit entry matches the filters.",
  needsOperator: "Needs the operator role",
  needsAdmin: "Needs the admin role",
  done: "Done",
  notFound: "Page not found",
  commandAckedQuiet: "{worker} is quiet: it acknowledged and takes no new jobs",
  commandAckedResume: "{worker} acknowledged and takes jobs again",
  commandAckedStop: "{worker} acknowledged and is stopping",
  commandRefused: "Refused by the worker {worker}: {answer}",
  commandExpired: "it did not answer before the command expired",
  commandPending: "Sent to {worker}, not yet acknowledged (command {id})",
  logoutEverywhere: "Log out everywhere",
  logoutEverywhereHint: "Every token of yours stops working within seconds, in every browser and script",
  ...enScreens,
} as const;

export type MessageKey = keyof typeof en;

const ko: Record<MessageKey, string> = {
  appName: "워커 모니터",
  overview: "개요",
  queues: "큐",
  workers: "워커",
  jobs: "작업",
  incidents: "장애",
  audit: "감사 로그",
  language: "언어",
  toggleDark: "다크 모드 전환",
  logout: "로그아웃",
  live: "실시간",
  reconnecting: "재연결 중",
  username: "사용자 이름",
  password: "비밀번호",
  login: "로그인",
  loginTitle: "워커 모니터 로그인",
  loginFailed: "로그인 실패",
  sessionExpired: "세션이 끝났습니다. 다시 로그인하세요.",
  retry: "다시 시도",
  loadFailed: "데이터를 불러오지 못했습니다",
  noData: "데이터 없음",
  waiting: "대기",
  active: "처리 중",
  delayed: "지연",
  failed: "실패",
  completed: "완료",
  workersOnline: "온라인 워커",
  jobsPerMinute: "분당 작업",
  successRate: "성공률 (24시간)",
  p95: "p95 (15분)",
  trends: "큐별 처리량 (최근 1시간)",
  noQueues: "아직 큐가 없습니다. 프로듀서가 모니터링 중인 Redis의 BullMQ에 작업을 추가하면 나타납니다.",
  noWorkers: "아직 보고한 워커가 없습니다 — README의 SDK 섹션을 참고해 워커를 계측하세요.",
  incidentBanner: "진행 중인 장애 {count}건",
  viewIncident: "보기",
  name: "이름",
  status: "상태",
  online: "온라인",
  offline: "오프라인",
  latency: "대기 시간",
  actions: "작업",
  details: "상세",
  pause: "일시 정지",
  resume: "재개",
  retryFailed: "실패 작업 재시도",
  promote: "즉시 실행",
  drain: "비우기",
  clean: "정리",
  close: "닫기",
  cancel: "취소",
  confirmName: "확인을 위해 이름을 입력하세요",
  dangerIntro: "되돌릴 수 없습니다. 확인하려면 {name}을(를) 입력하세요.",
  drainText: "큐 {name}의 대기 중인 작업을 모두 삭제합니다.",
  includeDelayed: "지연된 작업도 삭제",
  cleanText: "유예 기간보다 오래된 큐 {name}의 끝난 작업을 삭제합니다.",
  cleanState: "작업 상태",
  grace: "유예 (초)",
  limit: "최대 개수",
  stopText: "워커 {name}에 작업을 마치고 종료하도록 요청합니다.",
  range: "기간",
  throughput: "처리량",
  backlog: "적체",
  processingTime: "처리 시간 (ms)",
  waitTime: "대기 시간 (ms)",
  waitP95: "대기 p95",
  failuresByCategory: "분류별 실패",
  noFailuresInRange: "이 기간에는 실패가 없습니다.",
  activeJobs: "실행 중인 작업",
  concurrency: "동시 실행 한도",
  cpuPercent: "CPU (%)",
  rssMb: "메모리, RSS (MB)",
  customGauges: "사용자 지표",
  workerActivity: "실행 중인 작업 (1시간)",
  workerHistory: "최근 24시간, 1분 간격",
  noWorkerHistory: "기록 없음: 최근 24시간 동안 이 워커의 하트비트가 없습니다.",
  workerDetails: "워커 {name}",
  host: "호스트",
  pid: "PID",
  processed: "처리",
  uptime: "가동 시간",
  lastBeat: "마지막 신호",
  gauges: "지표",
  state: "상태",
  quiet: "수신 중지",
  stop: "중지",
  workerOffline: "워커가 오프라인입니다",
  showOffline: "오프라인 워커 표시",
  queue: "큐",
  allStates: "모든 상태",
  search: "검색",
  searchHelp: "작업 식별자 또는 작업 이름의 앞부분",
  created: "생성",
  attempts: "시도",
  duration: "소요 시간",
  reason: "사유",
  noJobs: "조건에 맞는 작업이 없습니다. 큐, 상태, 검색 조건을 바꿔 보세요.",
  pickQueue: "작업을 보려면 큐를 고르세요.",
  previous: "이전 페이지",
  next: "다음 페이지",
  page: "{page} 페이지",
  total: "총 {count}건",
  data: "데이터",
  returnValue: "반환 값",
  logs: "로그",
  stacktrace: "스택 트레이스",
  timeline: "타임라인",
  options: "옵션",
  truncated: "서버에서 잘렸습니다: 전체 크기는 {size}입니다.",
  showFull: "전체 값 보기",
  expandAll: "펼치기",
  job: "작업",
  severity: "심각도",
  type: "유형",
  started: "시작",
  openOnly: "진행 중만",
  all: "전체",
  acknowledge: "확인",
  resolve: "해결",
  note: "메모",
  resolutionNote: "해결 메모",
  noIncidents: "장애가 없습니다. 규칙(적체, 실패율, 워커 다운, 처리 지연)이 발동하면 장애가 열립니다.",
  recommended: "권장 조치",
  time: "시각",
  actor: "수행자",
  role: "역할",
  action: "동작",
  entity: "대상",
  outcome: "결과",
  result: "결과 값",
  anyAction: "모든 동작",
  noAudit: "조건에 맞는 감사 기록이 없습니다.",
  needsOperator: "operator 역할이 필요합니다",
  needsAdmin: "admin 역할이 필요합니다",
  done: "완료",
  notFound: "페이지를 찾을 수 없습니다",
  commandAckedQuiet: "{worker} 워커가 확인했습니다: 새 작업을 받지 않습니다",
  commandAckedResume: "{worker} 워커가 확인했습니다: 다시 작업을 받습니다",
  commandAckedStop: "{worker} 워커가 확인했고 중지하는 중입니다",
  commandRefused: "{worker} 워커가 거부했습니다: {answer}",
  commandExpired: "명령이 만료될 때까지 응답이 없었습니다",
  commandPending: "{worker} 워커에 보냈으나 아직 확인되지 않았습니다 (명령 {id})",
  logoutEverywhere: "모든 곳에서 로그아웃",
  logoutEverywhereHint: "모든 브라우저와 스크립트에서 내 토큰이 몇 초 안에 더 이상 쓰이지 않습니다",
  ...koScreens,
};

export type Lang = "en" | "ko";
const dictionaries: Record<Lang, Record<MessageKey, string>> = { en, ko };
const LANG_KEY = "workermon.lang";

export type Translate = (key: MessageKey, vars?: Record<string, string | number>) => string;

interface I18n {
  lang: Lang;
  setLang: (lang: Lang) => void;
  t: Translate;
}

function initialLang(): Lang {
  try {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === "en" || saved === "ko") return saved;
  } catch {
    /* storage unavailable */
  }
  return "en";
}

/** Whether `key` is a message of the dictionaries (for keys built from an API enum value). */
export function isMessageKey(key: string): key is MessageKey {
  return Object.prototype.hasOwnProperty.call(en, key);
}

/** The label of an API enum value (`prefix_VALUE` in the dictionaries), else the value in lower case. */
export function enumLabel(t: Translate, prefix: string, value: string): string {
  const key = `${prefix}_${value}`;
  return isMessageKey(key) ? t(key) : value.toLowerCase().replace(/_/g, " ");
}

/** A role's name (viewer, operator, admin), translated; another role as it is. */
export function roleLabel(t: Translate, role: string): string {
  const key = `role${role.charAt(0).toUpperCase()}${role.slice(1)}`;
  return isMessageKey(key) ? t(key) : role;
}

/** Who did something: a user's name, the suite itself ("system") or a caller without a token, translated. */
export function actorLabel(t: Translate, actor: string): string {
  if (actor === "system") return t("actorSystem");
  return actor === "anonymous" ? t("actorAnonymous") : actor;
}

/** Both dictionaries, for the test that they hold the same keys. */
export const DICTIONARIES = dictionaries;

export function translate(lang: Lang, key: MessageKey, vars?: Record<string, string | number>): string {
  let text = dictionaries[lang][key] ?? en[key];
  if (vars) for (const [k, v] of Object.entries(vars)) text = text.split(`{${k}}`).join(String(v));
  return text;
}

const I18nContext = createContext<I18n>({
  lang: "en",
  setLang: () => undefined,
  t: (key, vars) => translate("en", key, vars),
});

export function I18nProvider({ children }: { children: ReactNode }) {
  const [lang, setLangState] = useState<Lang>(initialLang);
  const setLang = useCallback((next: Lang) => {
    setLangState(next);
    try {
      localStorage.setItem(LANG_KEY, next);
    } catch {
      /* storage unavailable */
    }
    document.documentElement.lang = next;
  }, []);
  // Dates and times in the language shown; the page's language for screen readers and the browser.
  setFormatLocale(lang === "ko" ? "ko-KR" : "en-US");
  useEffect(() => {
    document.documentElement.lang = lang;
  }, [lang]);
  const value = useMemo<I18n>(() => ({ lang, setLang, t: (key, vars) => translate(lang, key, vars) }), [lang, setLang]);
  return <I18nContext.Provider value={value}>{children}</I18nContext.Provider>;
}

export function useI18n(): I18n {
  return useContext(I18nContext);
}
