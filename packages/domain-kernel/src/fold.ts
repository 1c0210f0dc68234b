/**
 * A stream's state folded with one copy per call instead of one per event (a copy an event makes
 * a fold quadratic in the stream's length). `start` makes the state from the event that opens the
 * stream (it may share that event's fields), or is undefined for any other event; `exists` says
 * whether the stream has been opened (events before that change nothing); `copy` copies a state;
 * `apply` changes a copy in place, adding copies of what later events change in place.
 */
export interface CopyOnceFold<S, E> {
  start(event: E): S | undefined;
  exists(state: S): boolean;
  copy(state: S): S;
  apply(state: S, event: E): void;
}

/**
 * The state after `events`, as copying it at every event would give it; `state` and the events
 * stay as they were. An evolve is this with one event.
 */
export function foldCopyingOnce<S, E>(spec: CopyOnceFold<S, E>, events: readonly E[], state: S): S {
  let current = state;
  let owned = false;
  for (const event of events) {
    const started = spec.start(event);
    if (started) {
      // Shares the event's fields: copied before the next event changes it.
      current = started;
      owned = false;
    } else if (spec.exists(current)) {
      if (!owned) current = spec.copy(current);
      owned = true;
      spec.apply(current, event);
    }
  }
  return current;
}
