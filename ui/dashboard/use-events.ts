// The React side of the outside store: a component re-renders with each snapshot the store makes
// (at most ten a second), never once per event.
import { useSyncExternalStore } from 'react';
import type { DashboardStore, Snapshot } from './store.js';

export function useEvents(store: DashboardStore): Snapshot {
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}
