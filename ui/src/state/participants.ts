// Participant state: who is in the meeting, their media, role and connection,
// the waiting room, whose video is arriving, and the active speaker.

import type { Entered, MediaState, ParticipantId, ParticipantInfo, Role, WaitingInfo } from "../engine/types";
import { canModerate, isHost } from "../engine/types";
import type { EngineEvent } from "../engine/engine";
import { LOCAL_PARTICIPANT } from "../engine/engine";
import { Observable } from "./observable";

/** Level (0..1) above which a participant counts as speaking. */
export const SPEAKING_LEVEL = 0.12;
/** The active speaker keeps the highlight this long after their last loud sample,
 * so a short interjection does not steal it. */
export const SPEAKER_HOLD_MS = 1500;

export interface Participant extends ParticipantInfo {
  self: boolean;
  /** Frames are arriving for this participant. */
  videoAvailable: boolean;
  /** Frames of their screen share are arriving. */
  screenAvailable: boolean;
  /** Last audio level 0..1. */
  level: number;
}

export class ParticipantsState extends Observable {
  private selfId: ParticipantId | null = null;
  private people = new Map<ParticipantId, Participant>();
  private waitingList: WaitingInfo[] = [];
  private lastLoud = new Map<ParticipantId, number>();
  private speaker: ParticipantId | null = null;
  private videoIds = new Set<ParticipantId>();
  private screenIds = new Set<ParticipantId>();

  /** Replaces everything with a join/admit/resume snapshot. */
  load(join: Entered): void {
    this.selfId = join.you.id;
    this.people.clear();
    for (const p of join.participants) this.upsert(p);
    if (!this.people.has(join.you.id)) this.upsert(join.you);
    this.waitingList = [...join.waiting];
    this.speaker = null;
    this.lastLoud.clear();
    this.changed();
  }

  clear(): void {
    this.selfId = null;
    this.people.clear();
    this.waitingList = [];
    this.speaker = null;
    this.lastLoud.clear();
    this.videoIds.clear();
    this.screenIds.clear();
    this.changed();
  }

  private upsert(p: ParticipantInfo): void {
    const id = p.id;
    this.people.set(id, {
      ...p,
      media: { ...p.media },
      self: id === this.selfId,
      videoAvailable: this.videoIds.has(id) || (id === this.selfId && this.videoIds.has(LOCAL_PARTICIPANT)),
      screenAvailable: this.screenIds.has(id),
      level: this.people.get(id)?.level ?? 0,
    });
  }

  /** Applies one engine event; returns true if it concerned participants. `now` in ms. */
  apply(event: EngineEvent, now: number): boolean {
    switch (event.event) {
      case "joined":
      case "admitted":
        this.load(event);
        return true;
      case "participant_joined":
        this.upsert(event.participant);
        this.waitingList = this.waitingList.filter((w) => w.participant_id !== event.participant.id);
        this.changed();
        return true;
      case "participant_left":
        if (!this.people.delete(event.participant_id)) return true;
        this.lastLoud.delete(event.participant_id);
        if (this.speaker === event.participant_id) this.speaker = null;
        this.changed();
        return true;
      case "media_changed":
        return this.patch(event.participant_id, (p) => {
          p.media = { ...event.media };
          p.audio_locked = event.audio_locked;
          if (!event.media.audio) p.level = 0;
        });
      case "role_changed":
        return this.patch(event.participant_id, (p) => {
          p.role = event.role;
        });
      case "participant_connection":
        return this.patch(event.participant_id, (p) => {
          p.connected = event.connected;
        });
      case "muted":
        if (this.selfId) {
          return this.patch(this.selfId, (p) => {
            p.media = { ...p.media, audio: false };
          });
        }
        return true;
      case "waiting_room":
        this.waitingList = [...event.waiting];
        this.changed();
        return true;
      case "video": {
        const id = this.resolve(event.participant_id);
        for (const key of event.participant_id === LOCAL_PARTICIPANT ? [id, LOCAL_PARTICIPANT] : [id]) {
          if (event.available) this.videoIds.add(key);
          else this.videoIds.delete(key);
        }
        this.patch(id, (p) => {
          p.videoAvailable = event.available;
        });
        return true;
      }
      case "screen":
        if (event.available) this.screenIds.add(event.participant_id);
        else this.screenIds.delete(event.participant_id);
        this.patch(event.participant_id, (p) => {
          p.screenAvailable = event.available;
        });
        return true;
      case "audio_level":
        this.level(this.resolve(event.participant_id), event.level, now);
        return true;
      default:
        return false;
    }
  }

  private resolve(id: ParticipantId): ParticipantId {
    return id === LOCAL_PARTICIPANT && this.selfId ? this.selfId : id;
  }

  /** Local camera frames are flowing (also known before joining, from the device check). */
  get localVideo(): boolean {
    return this.videoIds.has(LOCAL_PARTICIPANT) || (this.selfId !== null && this.videoIds.has(this.selfId));
  }

  private patch(id: ParticipantId, f: (p: Participant) => void): boolean {
    const p = this.people.get(id);
    if (!p) return true;
    f(p);
    // A new object so UIs comparing by identity see the change.
    this.people.set(id, { ...p });
    this.changed();
    return true;
  }

  /** An audio level sample. Decides the active speaker with a hold time. */
  level(id: ParticipantId, level: number, now: number): void {
    const p = this.people.get(id);
    if (!p) return;
    const muted = !p.media.audio;
    const effective = muted ? 0 : level;
    let dirty = Math.abs(p.level - effective) > 0.02;
    p.level = effective;
    if (effective >= SPEAKING_LEVEL) {
      this.lastLoud.set(id, now);
      const current = this.speaker;
      const currentLoud = current === null ? undefined : this.lastLoud.get(current);
      if (current !== id && (current === null || currentLoud === undefined || now - currentLoud > SPEAKER_HOLD_MS)) {
        this.speaker = id;
        dirty = true;
      }
    }
    if (dirty) {
      this.people.set(id, { ...p });
      this.changed();
    }
  }

  /** The highlighted participant, or null when nobody spoke within the hold time. */
  activeSpeaker(now: number): ParticipantId | null {
    if (this.speaker === null) return null;
    const t = this.lastLoud.get(this.speaker);
    if (t === undefined || now - t > SPEAKER_HOLD_MS * 2) return null;
    return this.speaker;
  }

  get self(): Participant | null {
    return this.selfId ? (this.people.get(this.selfId) ?? null) : null;
  }

  get selfRole(): Role | null {
    return this.self?.role ?? null;
  }

  get canModerate(): boolean {
    const r = this.selfRole;
    return r !== null && canModerate(r);
  }

  get isHost(): boolean {
    const r = this.selfRole;
    return r !== null && isHost(r);
  }

  get(id: ParticipantId): Participant | undefined {
    return this.people.get(id);
  }

  /** Everyone, self first, then by join time. */
  list(): Participant[] {
    return [...this.people.values()].sort((a, b) => {
      if (a.self !== b.self) return a.self ? -1 : 1;
      return a.joined_at - b.joined_at || a.display_name.localeCompare(b.display_name);
    });
  }

  /** The participant whose screen share fills the stage: someone sharing (by their
   * media state) whose frames arrive; the earliest to join if several share. */
  sharer(): Participant | null {
    return this.list().find((p) => !p.self && p.media.screen && p.screenAvailable) ?? null;
  }

  /** Everyone but self, by join time. */
  remotes(): Participant[] {
    return this.list().filter((p) => !p.self);
  }

  get count(): number {
    return this.people.size;
  }

  get waiting(): readonly WaitingInfo[] {
    return this.waitingList;
  }

  name(id: ParticipantId): string {
    return this.people.get(id)?.display_name ?? "Someone";
  }

  /** A moderator muted us and the relay refuses our microphone until they allow it. */
  get selfAudioLocked(): boolean {
    return this.self?.audio_locked ?? false;
  }

  selfMedia(): MediaState {
    return this.self?.media ?? { audio: false, video: false, screen: false };
  }
}
