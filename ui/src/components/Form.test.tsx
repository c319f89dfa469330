// @vitest-environment happy-dom
import { afterEach, describe, expect, it } from "vitest";
import { createSignal, type JSX } from "solid-js";
import { render } from "solid-js/web";
import { Field, FormError, SubmitButton } from "./Form";

let dispose: (() => void) | null = null;
afterEach(() => {
  dispose?.();
  dispose = null;
  document.body.innerHTML = "";
});

function mount(view: () => JSX.Element): HTMLElement {
  const root = document.createElement("div");
  document.body.append(root);
  dispose = render(view, root);
  return root;
}

describe("Field", () => {
  it("renders the label for its control and passes typed input to the caller", () => {
    const [value, setValue] = createSignal("");
    const root = mount(() => (
      <Field id="f-name" label="Your name">
        <input id="f-name" type="text" value={value()} onInput={(e) => setValue(e.currentTarget.value)} />
      </Field>
    ));
    const field = root.querySelector("div.field")!;
    expect(field.className).toBe("field");
    const label = field.querySelector("label")!;
    expect(label.textContent).toBe("Your name");
    expect(label.getAttribute("for")).toBe("f-name");
    const input = field.querySelector<HTMLInputElement>("input#f-name")!;
    input.value = "Pat";
    input.dispatchEvent(new Event("input", { bubbles: true }));
    expect(value()).toBe("Pat");
    expect(field.querySelector("p")).toBeNull();
  });

  it("shows the hint under the control (with its id when given) and lays out inline", () => {
    const root = mount(() => (
      <Field id="f-max" label="Max participants" hint="From 2 up" hintId="f-max-hint" inline>
        <input id="f-max" type="number" />
      </Field>
    ));
    const field = root.querySelector("div.field")!;
    expect(field.className).toBe("field field-inline");
    const hint = field.querySelector("p.hint")!;
    expect(hint.id).toBe("f-max-hint");
    expect(hint.textContent?.trim()).toBe("From 2 up");
    expect([...field.children].map((c) => c.tagName)).toEqual(["LABEL", "INPUT", "P"]);
  });
});

describe("FormError", () => {
  it("shows the error as an alert while there is one", () => {
    const [error, setError] = createSignal<string | null>(null);
    const root = mount(() => <FormError message={error()} testId="device-error" />);
    expect(root.querySelector("[role=alert]")).toBeNull();
    setError("Could not reach the clinic's server.");
    const alert = root.querySelector("[role=alert]")!;
    expect(alert.className).toBe("alert alert-warn");
    expect(alert.getAttribute("data-testid")).toBe("device-error");
    expect(alert.querySelector("span")!.textContent).toBe("Could not reach the clinic's server.");
    setError(null);
    expect(root.querySelector("[role=alert]")).toBeNull();
  });
});

describe("SubmitButton", () => {
  it("is disabled and says so while busy", () => {
    const [busy, setBusy] = createSignal(false);
    const root = mount(() => <SubmitButton busy={busy()} label="Connect" busyLabel="Connecting…" />);
    const button = root.querySelector<HTMLButtonElement>("button[type=submit]")!;
    expect(button.textContent).toBe("Connect");
    expect(button.disabled).toBe(false);
    setBusy(true);
    expect(button.textContent).toBe("Connecting…");
    expect(button.disabled).toBe(true);
  });
});
