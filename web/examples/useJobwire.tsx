// React hooks over jobwire-client: an example to copy into an app, not part of the library
// (the library has no dependency on React). Works in React DOM and React Native alike.
// Documented in docs/WEB.md ("React"); type-checked by tests/web (tsc, with and without DOM).
//
//   const client = useMemo(() => new JobwireClient({ url, getToken }), []);
//   const { jobs, state, synced } = useJobwire(client, { scope: "user" });
//   useWakeOnForeground(client, browserForeground);        // or an AppState adapter (RN)
import { useEffect, useSyncExternalStore } from "react";
import type { ConnectionState, JobState, JobwireClient, SubscribeSpec } from "jobwire-client";

export interface JobwireView {
  /** jobId → JobState; a new Map after each change, so it can be a dependency or a prop. */
  jobs: ReadonlyMap<string, JobState>;
  state: ConnectionState;
  /** Live and every job up to date; false while paused, reconnecting or resyncing. */
  synced: boolean;
}

/**
 * Connects the client while the component is mounted, subscribes to `spec`, and re-renders on
 * every change of the jobs, the connection state and the sync flag. The client keeps the
 * jobs across reconnects (stale meanwhile), so the component needs no bookkeeping of its own.
 */
export function useJobwire(client: JobwireClient, spec?: SubscribeSpec): JobwireView {
  const jobs = useSyncExternalStore((cb) => client.on("jobs", cb), () => client.jobs);
  const state = useSyncExternalStore((cb) => client.on("state", cb), () => client.state);
  const synced = useSyncExternalStore((cb) => client.on("sync", cb), () => client.synced);
  const key = spec === undefined ? "" : JSON.stringify(spec);
  useEffect(() => {
    client.connect();
    if (spec === undefined) return undefined;
    client.subscribe(spec).catch(() => {
      /* refusals arrive as "error" events too */
    });
    return () => {
      client.unsubscribe(spec).catch(() => {});
    };
    // `key` stands for `spec`: a new object with the same content must not resubscribe.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, key]);
  useEffect(() => () => client.close(), [client]);
  return { jobs, state, synced };
}

/** One job's state (the same object until that job changes), or undefined. */
export function useJob(client: JobwireClient, jobId: string): JobState | undefined {
  return useSyncExternalStore((cb) => client.on("jobs", cb), () => client.jobs.get(jobId));
}

/** Calls back when the app comes to the foreground; returns an unsubscribe function. */
export type ForegroundSource = (onForeground: () => void) => () => void;

/**
 * Resumes at once when the app comes back to the foreground: a scheduled reconnect happens now
 * (no waiting out a long backoff), and a connection that survived is checked with a ping. The
 * client's resume (lastEventId) then brings what was missed while in the background.
 */
export function useWakeOnForeground(client: JobwireClient, source: ForegroundSource): void {
  useEffect(() => source(() => client.wake()), [client, source]);
}

/** Browsers: the page became visible again (document.visibilitychange). */
export const browserForeground: ForegroundSource = (onForeground) => {
  // Typed locally so that this file also compiles without the DOM lib (React Native).
  const doc = (globalThis as {
    document?: {
      visibilityState: string;
      addEventListener(type: "visibilitychange", fn: () => void): void;
      removeEventListener(type: "visibilitychange", fn: () => void): void;
    };
  }).document;
  if (!doc) return () => {};
  const onChange = () => {
    if (doc.visibilityState === "visible") onForeground();
  };
  doc.addEventListener("visibilitychange", onChange);
  return () => doc.removeEventListener("visibilitychange", onChange);
};

// React Native (not imported here, so the example has no react-native dependency):
//   import { AppState } from "react-native";
//   export const appStateForeground: ForegroundSource = (onForeground) => {
//     const sub = AppState.addEventListener("change", (s) => { if (s === "active") onForeground(); });
//     return () => sub.remove();
//   };

/** A minimal web list of the user's jobs, most recently started first. */
export function JobList({ client }: { client: JobwireClient }) {
  const { jobs, state, synced } = useJobwire(client, { scope: "user" });
  useWakeOnForeground(client, browserForeground);
  const rows = [...jobs.values()].sort((a, b) => b.startedAt - a.startedAt);
  return (
    <section aria-busy={!synced}>
      <p>{state}{synced ? "" : " (updating…)"}</p>
      <ul>
        {rows.map((job) => (
          <li key={job.jobId} style={{ opacity: job.stale ? 0.5 : 1 }}>
            {job.jobId}: {job.status ?? "unknown"} {job.progress != null ? `${job.progress}%` : ""}
            {job.error ? ` (${job.error})` : ""}
          </li>
        ))}
      </ul>
    </section>
  );
}
