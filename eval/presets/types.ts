// The workloads an overhead campaign can run: a preset (installed on demand) or any command.
export interface Throughput {
  value: number;
  /** e.g. `ops/s`, `MiB/s`, `bogo-ops/s`. */
  unit: string;
  /** Total work the run did in the same units times seconds (operations, accesses, MiB):
   *  with the workload's CPU time it gives work per CPU-second. */
  work?: number;
}

/** One measured run of the workload. */
export interface WorkloadRun {
  argv: string[];
  /** Extracts the workload's own throughput figure; null when it printed none. */
  parse(stdout: string, stderr: string): Throughput | null;
}

export interface PreparedWorkload {
  /** Label in results (`redis`, `sysbench-memory`, the command's name). */
  name: string;
  /** Versions of the tools used, for command.json. */
  tools: Record<string, string>;
  settings: Record<string, unknown>;
  run(): WorkloadRun;
  /** Environment of each run (default: this process's); commands get a PATH that finds `vtier`. */
  env?: NodeJS.ProcessEnv;
  /** The process whose memory the agent should watch; undefined = the run's own process. */
  targetPid?: number;
  /** Stops whatever prepare() started (servers); idempotent. */
  stop(): Promise<void>;
}

export interface Preset {
  name: string;
  description: string;
  /** Debian packages that provide the binaries. */
  packages: string[];
  binaries: string[];
  prepare(): Promise<PreparedWorkload>;
}
