// A meeting's code and invite link, each with a copy button: after creating a
// meeting (home) and after the host gave it a new code (meeting).

import type { JSX } from "solid-js";
import { useApp } from "../appContext";
import { inviteLink } from "../state/accessCode";
import { CopyButton } from "./CopyButton";

/** The link carries the invite secret when there is one, else the code. */
export function useInviteLink(secret: () => string): () => string {
  const app = useApp();
  return () => inviteLink(app.relay()?.address ?? "", secret());
}

export function ShareCode(props: { code: string; inviteSecret?: string | null; compact?: boolean; codeTestId?: string; what?: string }): JSX.Element {
  const link = useInviteLink(() => props.inviteSecret ?? props.code);
  const what = () => (props.what ? `${props.what} ` : "");
  return (
    <>
      <div class="code-row">
        <span class="label">Code</span>
        <span class={props.compact ? "mono code-small" : "code-big"} data-testid={props.codeTestId}>
          {props.code}
        </span>
        <CopyButton text={props.code} label={`Copy ${what()}meeting code`} compact={props.compact} />
      </div>
      <div class="code-row">
        <span class="label">Invite link</span>
        <span class="mono link-text">{link()}</span>
        <CopyButton text={link()} label={`Copy ${what()}invite link`} compact={props.compact} />
      </div>
    </>
  );
}
