// The "Past meetings" list: this device's meetings (its store) merged with, for
// staff, the relay's list of meetings they created or took part in; then search
// by title and a date range. Pure: feed it both lists, read the rows.

import type { LocalMeeting } from "../engine/engine";
import type { MeetingId, MeetingKind, MeetingStatus, PastMeeting, UnixMillis } from "../engine/types";

export interface PastRow {
  meeting_id: MeetingId;
  title: string;
  kind: MeetingKind | string;
  status: MeetingStatus | string;
  /** When it started (or was created, if it never started); this device's last sight of it otherwise. */
  at: UnixMillis;
  patient_reference: string | null;
  /** The user created it (for a consultation: held it, so its record can be opened). */
  held: boolean;
  /** Its chat is kept on this device (readable offline). */
  onDevice: boolean;
}

export interface PastQuery {
  /** Words the title contains, case-insensitive; empty = any. */
  text: string;
  /** Inclusive lower bound, or null. */
  from: UnixMillis | null;
  /** Exclusive upper bound, or null. */
  to: UnixMillis | null;
}

/** One row per meeting, the relay's facts winning over this device's older copy; newest first. */
export function mergePast(local: readonly LocalMeeting[], relay: readonly PastMeeting[]): PastRow[] {
  const rows = new Map<MeetingId, PastRow>();
  for (const m of local) {
    rows.set(m.meeting_id, {
      meeting_id: m.meeting_id,
      title: m.title,
      kind: m.kind,
      status: m.status,
      at: m.last_seen_at,
      patient_reference: m.patient_reference,
      held: m.role === "host",
      onDevice: true,
    });
  }
  for (const p of relay) {
    const i = p.meeting;
    const onDevice = rows.has(i.id);
    rows.set(i.id, {
      meeting_id: i.id,
      title: i.title,
      kind: i.kind,
      status: i.status,
      at: i.started_at ?? i.created_at,
      patient_reference: i.patient_reference ?? null,
      held: p.held,
      onDevice,
    });
  }
  return [...rows.values()].sort((a, b) => b.at - a.at);
}

export function filterPast(rows: readonly PastRow[], q: PastQuery): PastRow[] {
  const words = q.text.toLowerCase().split(/\s+/).filter((w) => w.length > 0);
  return rows.filter((r) => {
    const title = r.title.toLowerCase();
    if (!words.every((w) => title.includes(w))) return false;
    if (q.from !== null && r.at < q.from) return false;
    if (q.to !== null && r.at >= q.to) return false;
    return true;
  });
}

/** `<input type="date">` values as a range: from the start of the first day to the end of the last (local time). */
export function dayRange(from: string, to: string): { from: UnixMillis | null; to: UnixMillis | null } {
  const day = (s: string, plus: number): UnixMillis | null => {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
    if (!m) return null;
    return new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + plus).getTime();
  };
  return { from: day(from, 0), to: day(to, 1) };
}
