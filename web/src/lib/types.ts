// The shapes of the API answers the console reads (see /api/v1/docs and the V2 protocol).

export interface Me {
  name: string;
  role: string;
  user_id: number | null;
  key_id: string | null;
  allowed_models: string[] | null;
}

export interface VersionInfo {
  version: number;
  runtime: string;
  state: string;
  reason: string;
  size_bytes: number;
  created_at: string;
  pinned: boolean;
  memory_bytes: number | null;
  last_used_at: string | null;
}

export interface ModelInfo {
  name: string;
  versions: VersionInfo[];
  aliases: Record<string, number>;
}

export interface TensorSpec {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

export interface ModelConfig {
  name: string;
  version: string;
  runtime: string;
  task?: string | null;
  max_batch_size: number;
}

export interface V2Tensor {
  name: string;
  datatype: string;
  shape: number[];
  data: unknown[];
}

export interface V2Response {
  model_name: string;
  model_version: string;
  outputs: V2Tensor[];
}

export interface UsageRecord {
  id: number;
  model: string;
  version: number | null;
  status: number;
  latency_ms: number;
  batch_size: number;
  bytes_in: number;
  bytes_out: number;
  created_at: string;
}

export interface UsagePage {
  records: UsageRecord[];
  next_before_id: number | null;
}

export interface CacheModel {
  name: string;
  version: string;
  state: string;
  reason: string;
  footprint_bytes: number;
  measured_bytes: number | null;
  leases: number;
  pinned: boolean;
}

export interface CacheState {
  budget_bytes: number;
  used_bytes: number;
  freeing_bytes: number;
  reserved_bytes: number;
  process_rss_bytes: number;
  models: CacheModel[];
}

export interface Histogram {
  bounds: number[];
  counts: number[];
  count: number;
  sum: number;
}

export interface ModelStats {
  name: string;
  version: string;
  state: string;
  reason: string;
  footprint_bytes: number;
  leases: number;
  idle_seconds: number | null;
  requests: Record<string, number>;
  latency_seconds: Histogram;
  batch_size: Histogram;
  queue: { depth: number; capacity: number; batches: number; rejected: number; expired: number } | null;
  loads: Histogram;
  last_load: { seconds: number; phases: Record<string, number> } | null;
}

export interface StatsSnapshot {
  time: number;
  models: ModelStats[];
}

export interface User {
  id: number;
  name: string;
  role: string;
  disabled: boolean;
  created_at: string;
}

export interface ApiKey {
  key_id: string;
  name: string | null;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  allowed_models: string[] | null;
  requests_per_minute: number | null;
  max_in_flight: number | null;
}

export interface KeyCreated extends ApiKey {
  key: string;
}
