// What every screen needs: the engine, the frame store and the set-up facts.

import { createContext, useContext, type Accessor } from "solid-js";
import type { Engine, RelayConfig } from "./engine/engine";
import type { StaffIdentity } from "./engine/types";
import type { FrameStore } from "./video/frames";
import type { MeetingSession } from "./state/session";

export type Screen =
  | { name: "first_run" }
  /** Browser guest page: an invite link's landing (open the app, or join here). */
  | { name: "invite"; code: string }
  /** Browser guest page: the relay cannot be reached. */
  | { name: "offline"; message: string }
  | { name: "home" }
  | { name: "device_check"; code: string; displayName: string; meetingId?: string }
  | { name: "meeting"; session: MeetingSession }
  | { name: "consultations"; openId?: string }
  | { name: "past_meetings" }
  | { name: "clinic" };

export interface AppContext {
  engine: Engine;
  /** The relay's guest page in a plain browser (no server set-up, no staff features). */
  browser: boolean;
  frames: FrameStore;
  rendererPreference: "webgl" | "2d";
  relay: Accessor<RelayConfig | null>;
  setRelay: (r: RelayConfig | null) => void;
  staff: Accessor<StaffIdentity | null>;
  setStaff: (s: StaffIdentity | null) => void;
  go: (screen: Screen) => void;
  /** A relay to pre-fill on the first-run screen (invite link or environment), not yet connected. */
  prefill: Accessor<RelayConfig | null>;
  /** A code taken from an invite link (`#ABCD-EFGH`), if the app was opened with one. */
  /** From the page's `#fragment`: an `ABCD-EFGH` code or a 26-character invite secret. */
  inviteCode: string | null;
}

export const AppCtx = createContext<AppContext>();

export function useApp(): AppContext {
  const ctx = useContext(AppCtx);
  if (!ctx) throw new Error("AppCtx missing");
  return ctx;
}
