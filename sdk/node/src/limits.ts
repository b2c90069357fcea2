/** What one beat may carry: the heartbeat service refuses a report beyond these (libs/core validation.py). */

export const MAX_QUEUES = 64;
export const MAX_LABELS = 32;
export const MAX_ACTIVE_JOB_IDS = 1000;
export const MAX_GAUGES = 32;
export const MAX_REDIS_CLIENTS = 16;
export const MAX_ACKS_PER_BEAT = 100;
export const MAX_RESULT_CHARS = 1000;
export const MAX_TIMINGS = 64;
export const MAX_JOB_ID = 512;
export const MAX_SHORT_TEXT = 64;
export const MAX_LABEL_VALUE = 256;
export const WORKER_ID_RE = /^[A-Za-z0-9._:@/-]{1,200}$/;
