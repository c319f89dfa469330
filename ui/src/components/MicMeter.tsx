import type { JSX } from "solid-js";

/** A horizontal level meter, 0..1, with an accessible value. */
export function MicMeter(props: { level: number; label: string }): JSX.Element {
  const pct = () => Math.round(Math.min(1, Math.max(0, props.level)) * 100);
  return (
    <div class="meter" role="meter" aria-label={props.label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct()}>
      <div class="meter-fill" style={{ width: `${pct()}%` }} />
    </div>
  );
}
