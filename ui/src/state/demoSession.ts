// Tests' meeting session: hosted by enrolled staff over the in-memory demo relay,
// on vitest's fake clock (the demo engine's delays pass with `vi.advanceTimersByTimeAsync`).

import { vi } from "vitest";
import { DEMO_PIN, DEMO_RELAY, type DemoEngine } from "../engine/demo";
import { defaultSettings } from "../engine/types";
import { MeetingSession } from "./session";

export async function settle(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** `engine` (staff "Dr. Ada") connects, creates a video meeting and joins it as its host. */
export async function hostedSession(engine: DemoEngine): Promise<MeetingSession> {
  const hello = engine.connect({ address: DEMO_RELAY, pin: DEMO_PIN });
  await settle(500);
  if ((await hello).staff?.name !== "Dr. Ada") throw new Error("the demo engine is not staff");
  const created = engine.createMeeting({ title: "Team", kind: "video", settings: defaultSettings() });
  await settle(500);
  const { access_code } = await created;
  const session = new MeetingSession(engine, { now: () => Date.now() });
  const joined = session.join(access_code, "Dr. Ada", { camera: true, mic: true, chatOnly: false });
  await settle(500);
  await joined;
  return session;
}
