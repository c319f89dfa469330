// First run: the clinic's relay (address + key fingerprint), then staff
// enrollment with a one-time code, or continue as a guest.

import { createSignal, Match, Show, Switch, type JSX } from "solid-js";
import { useApp } from "../appContext";
import { EngineError, errorText } from "../engine/engine";
import { Icon } from "../components/Icon";
import { Field, FormError, SubmitButton } from "../components/Form";

export function FirstRun(): JSX.Element {
  const app = useApp();
  const initial = app.prefill() ?? app.relay();
  const [step, setStep] = createSignal<"relay" | "who">(app.relay() && !app.prefill() ? "who" : "relay");
  const [address, setAddress] = createSignal(initial?.address ?? "");
  const [pin, setPin] = createSignal(initial?.pin ?? "");
  const [busy, setBusy] = createSignal(false);
  const [error, setError] = createSignal<string | null>(null);
  const [mismatch, setMismatch] = createSignal<string | null>(null);
  const [code, setCode] = createSignal("");
  const [deviceName, setDeviceName] = createSignal("Consulting room 2");

  const connect = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setMismatch(null);
    setBusy(true);
    try {
      const relay = { address: address().trim(), pin: pin().trim() };
      const hello = await app.engine.connect(relay);
      app.setRelay(relay);
      if (hello.staff) {
        app.setStaff(hello.staff);
        app.go({ name: "home" });
      } else setStep("who");
    } catch (err) {
      if (err instanceof EngineError && err.code === "pin_mismatch") setMismatch(err.presentedPin ?? "unknown");
      else if (err instanceof EngineError && err.code === "unreachable") setError(`No answer from ${address()}. Check the address and your network.`);
      else if (err instanceof EngineError) setError(errorText(err));
      else setError(String(err));
    } finally {
      setBusy(false);
    }
  };

  const enroll = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setBusy(true);
    try {
      const staff = await app.engine.enroll(code().trim(), deviceName().trim());
      app.setStaff(staff);
      app.go({ name: "home" });
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="page page-narrow" aria-labelledby="first-run-title">
      <div class="brand">
        <span class="brand-mark" aria-hidden="true">
          <Icon name="plus" size={22} />
        </span>
        <span class="brand-name">ClinicMeet</span>
      </div>
      <Switch>
        <Match when={step() === "relay"}>
          <section class="card">
            <h1 id="first-run-title">Connect to your clinic</h1>
            <p class="lead">Enter the server address and key fingerprint from your clinic's administrator or from your invite.</p>
            <form onSubmit={connect} class="form">
              <Field id="relay-address" label="Server address">
                <input id="relay-address" type="text" autocomplete="off" spellcheck={false} placeholder="relay.clinic.example:4433" value={address()} onInput={(e) => setAddress(e.currentTarget.value)} required />
              </Field>
              <Field id="relay-pin" label="Key fingerprint (SHA-256)" hintId="relay-pin-hint" hint="The server proves its identity with this fingerprint. It stays valid when the certificate is renewed.">
                <input
                  id="relay-pin"
                  class="mono"
                  type="text"
                  autocomplete="off"
                  spellcheck={false}
                  placeholder="sha256/…"
                  value={pin()}
                  onInput={(e) => setPin(e.currentTarget.value)}
                  aria-describedby="relay-pin-hint"
                  aria-invalid={mismatch() !== null}
                  required
                />
              </Field>
              <Show when={mismatch()}>
                <div class="alert alert-danger" role="alert">
                  <Icon name="warning" size={24} />
                  <div>
                    <strong>The server's identity does not match.</strong>
                    <p>
                      The server at <span class="mono">{address()}</span> presented a different key than the fingerprint you entered. ClinicMeet did not
                      connect. Check the fingerprint with your clinic's administrator. If it is correct, someone may be intercepting the connection.
                    </p>
                    <p class="mono small">Presented: {mismatch()}</p>
                  </div>
                </div>
              </Show>
              <FormError message={error()} />
              <SubmitButton busy={busy()} label="Connect" busyLabel="Connecting…" />
            </form>
          </section>
        </Match>
        <Match when={step() === "who"}>
          <section class="card">
            <h1 id="first-run-title">How will you use ClinicMeet?</h1>
            <p class="lead">
              Connected to <span class="mono">{app.relay()?.address}</span>.
            </p>
            <div class="choice-grid">
              <form class="choice" onSubmit={enroll}>
                <h2>Clinic staff</h2>
                <p>Enroll this device once with the one-time code from your administrator.</p>
                <Field id="enroll-code" label="One-time enrollment code">
                  <input id="enroll-code" class="mono" type="text" autocomplete="one-time-code" spellcheck={false} value={code()} onInput={(e) => setCode(e.currentTarget.value)} required />
                </Field>
                <Field id="device-name" label="Name of this device">
                  <input id="device-name" type="text" value={deviceName()} onInput={(e) => setDeviceName(e.currentTarget.value)} required />
                </Field>
                <FormError message={error()} />
                <SubmitButton busy={busy()} label="Enroll this device" busyLabel="Enrolling…" />
              </form>
              <div class="choice">
                <h2>Patient or guest</h2>
                <p>Join a meeting with the code you were given. No account needed.</p>
                <button type="button" class="btn btn-secondary btn-large" onClick={() => app.go({ name: "home" })}>
                  Join as guest
                </button>
              </div>
            </div>
            <button type="button" class="btn btn-link" onClick={() => setStep("relay")}>
              Use a different server
            </button>
          </section>
        </Match>
      </Switch>
    </main>
  );
}

