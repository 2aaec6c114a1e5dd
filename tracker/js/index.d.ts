/** Settings for `init`. Every field is optional; data-attribute strings are accepted too. */
export interface Config {
  /** Sent in every batch body; identifies the source to the collector. */
  writeKey?: string;
  /** Collector base URL. Default: the page's origin (first-party collector). */
  endpoint?: string;
  /** Flush when this many events are queued. Default 20. */
  flushAt?: number;
  /** Flush this many ms after the first queued event. Default 5000. */
  flushInterval?: number;
  /** Flush when the queued JSON reaches this size; also the largest request body. Default 32768. */
  maxBatchBytes?: number;
  /** Caps of the persistent queue (oldest dropped first). Defaults 1000 events, 1000000 bytes. */
  maxQueueEvents?: number;
  maxQueueBytes?: number;
  /** No persistent identifier: anonymousId and queue live in sessionStorage. Default false. */
  cookieless?: boolean;
  /** Query parameters redacted from every captured URL (array or comma-separated). */
  redactParams?: string[] | string;
  /** Honour Do Not Track / Global Privacy Control as "denied". Default true. */
  respectDnt?: boolean;
  respectGpc?: boolean;
  /** Initial consent. Default "granted". */
  consent?: ConsentState;
  /** Automatic tracking switches, all default true. */
  autoPage?: boolean;
  autoSpa?: boolean;
  autoClicks?: boolean;
  autoDeclarative?: boolean;
  autoEngagement?: boolean;
}

export type ConsentState = 'granted' | 'pending' | 'denied';
export type Properties = Record<string, unknown>;

export interface Stats {
  queued: number;
  inflight: number;
  dropped: number;
  anonymousId: string;
  userId?: string;
  consent: ConsentState;
}

/**
 * Planned event names and their properties' types. Empty here: the file `collector plan types`
 * writes from a tracking plan fills it in. While it is empty, track() takes any event name.
 */
export interface PlannedEvents {}
/** identify()'s traits, from the plan's identify schema (filled in the same way). */
export interface PlannedTraits {}

/** The event names track() accepts: the planned ones, or any string without a plan. */
export type EventName = keyof PlannedEvents extends never ? string : keyof PlannedEvents & string;
/** track()'s arguments after the name: required when the planned properties have a required key. */
export type TrackArgs<E extends string> = E extends keyof PlannedEvents
  ? {} extends PlannedEvents[E]
    ? [properties?: PlannedEvents[E]]
    : [properties: PlannedEvents[E]]
  : [properties?: Properties];
/** identify()'s traits: the planned ones, or any properties without a plan. */
export type Traits = keyof PlannedTraits extends never ? Properties : PlannedTraits;

export interface Tracker {
  track<E extends EventName>(event: E, ...args: TrackArgs<E>): Tracker;
  page(name?: string | Properties, properties?: Properties): Tracker;
  identify(userId?: string, traits?: Traits): Tracker;
  identify(traits: Traits): Tracker;
  group(groupId: string, traits?: Properties): Tracker;
  alias(newId: string): Tracker;
  reset(): Tracker;
  consent(state: ConsentState): Tracker;
  /** Sends what is queued; resolves true once the queue is empty. */
  flush(): Promise<boolean>;
  /** Queue counters, or null before the module has loaded. */
  stats(): Stats | null;
  /** Resolves once the WebAssembly module is running (or failed to load). */
  ready: Promise<Tracker>;
}

/** Starts tracking. `wasm` overrides where `tracker_core_bg.wasm` is fetched from. */
export function init(config?: Config, wasm?: string | URL | Response | BufferSource | WebAssembly.Module): Tracker;
export default init;
