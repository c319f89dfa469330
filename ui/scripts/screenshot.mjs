// Builds the UI, serves it with the DemoEngine, drives Debian's Chromium through
// the main screens and saves screenshots into ui/screenshots/.
// Usage: node scripts/screenshot.mjs [--no-build]
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { preview } from "vite";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const out = join(root, "screenshots");
mkdirSync(out, { recursive: true });

if (!process.argv.includes("--no-build")) {
  execFileSync("npx", ["vite", "build", "--logLevel", "warn"], { cwd: root, stdio: "inherit" });
}

const server = await preview({ root, preview: { port: 0, host: "127.0.0.1", strictPort: false }, logLevel: "warn" });
const address = server.httpServer.address();
const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 4173}/`;

const profile = mkdtempSync(join(tmpdir(), "clinicmeet-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"],
  viewport: { width: 1280, height: 800 },
  deviceScaleFactor: 1,
});

const errors = [];
const shots = [];
async function shot(page, name) {
  const path = join(out, `${name}.png`);
  await page.screenshot({ path });
  shots.push(path);
}
function watch(page) {
  page.on("pageerror", (e) => errors.push(`${page.url()}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${page.url()}: console: ${m.text()}`);
  });
}

try {
  // --- First run, with a wrong fingerprint ---------------------------------
  const guest = await context.newPage();
  watch(guest);
  await guest.goto(`${base}?reset`);
  await guest.getByLabel("Server address").fill("relay.clinic.example:4433");
  await guest.getByLabel("Key fingerprint (SHA-256)").fill("00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff");
  await guest.getByRole("button", { name: "Connect" }).click();
  await guest.getByText("The server's identity does not match.").waitFor();
  await shot(guest, "first-run-pin-mismatch");

  // --- Guest joins a consultation with a waiting room ------------------------
  // The demo relay's fingerprint (DEMO_PIN in src/engine/demo.ts).
  await guest.getByLabel("Key fingerprint (SHA-256)").fill("5f:3a:9c:0e:71:b2:48:d6:aa:13:c4:29:8e:f0:57:6b:92:3d:e1:0c:b8:44:7a:26:d9:31:5e:c7:08:fa:63:b5");
  await guest.getByRole("button", { name: "Connect" }).click();
  await guest.getByRole("button", { name: "Join as guest" }).click();
  await guest.getByLabel("Meeting code").fill("care7788");
  await guest.getByLabel("Your name").fill("Jordan Miller");
  await guest.getByRole("button", { name: "Continue" }).click();
  await guest.getByRole("button", { name: "Join meeting" }).click();
  await guest.getByText("The doctor will be with you shortly").waitFor();
  await shot(guest, "waiting-room");
  await guest.close();

  // --- Staff: home, create a meeting ------------------------------------------
  const page = await context.newPage();
  watch(page);
  await page.goto(`${base}?reset&staff=${encodeURIComponent("Dr. Ada Lovelace")}`);
  // The header's "Sounds and notifications" switch.
  await page.getByTestId("signals-toggle").waitFor();
  await shot(page, "home-signals-setting");
  await page.getByLabel("Title").fill("Case review: cardiology");
  await page.getByLabel("Waiting room").check();
  await page.getByRole("button", { name: "Create meeting" }).click();
  await page.getByTestId("created-code").waitFor();
  await shot(page, "home");

  // --- Device check --------------------------------------------------------------
  await page.getByRole("button", { name: "Join now" }).click();
  await page.getByText("Check your camera and sound").waitFor();
  await page.waitForTimeout(1500);
  await shot(page, "device-check");

  // --- Meeting ---------------------------------------------------------------------
  await page.getByRole("button", { name: "Join meeting" }).click();
  await page.locator(".meeting").waitFor();
  await page.waitForTimeout(4200); // the simulated guest arrives in the waiting room
  await page.getByRole("button", { name: "Chat", exact: true }).click();
  await page.getByLabel("Write a message").fill("Good morning, can you see the ECG I shared?");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForTimeout(3200); // reply
  await page.getByLabel("Write a message").fill("<img src=x onerror=alert(1)> stays text");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForTimeout(600);
  await shot(page, "meeting");
  // The window title counts the waiting room (the chat is open: nothing unread).
  console.log("window title in the meeting:", await page.title());

  await page.getByRole("button", { name: "People" }).click();
  await shot(page, "meeting-participants");
  await page.getByRole("button", { name: /^Admit / }).first().click();
  await page.waitForTimeout(1200);
  await page.getByRole("button", { name: "Close participants" }).click();
  await shot(page, "meeting-grid");
  // The relay's own line for the admitted guest, centered and muted among the messages.
  await page.getByRole("button", { name: "Chat", exact: true }).click();
  await page.getByTestId("chat-system-line").first().waitFor();
  await shot(page, "meeting-chat-system-lines");
  await page.getByRole("button", { name: "Close chat" }).click();

  const tiles = await page.$$eval("canvas.tile-canvas", (cs) => cs.map((c) => `${c.dataset.renderer}:${c.dataset.framesDrawn ?? 0}`));
  console.log("tiles (renderer:frames drawn):", tiles.join(" "));

  await page.evaluate(() => window.demoEngine?.simulateDrop(5000));
  await page.waitForTimeout(400);
  await shot(page, "meeting-reconnecting");

  // --- No devices --------------------------------------------------------------------
  const bare = await context.newPage();
  watch(bare);
  await bare.goto(`${base}?reset&devices=none&staff=${encodeURIComponent("Dr. Ada Lovelace")}`);
  await bare.getByLabel("Meeting code").fill("HUDL2345");
  await bare.getByRole("button", { name: "Continue" }).click();
  await bare.getByText("No camera found.", { exact: false }).first().waitFor();
  await shot(bare, "device-check-no-devices");

  // --- Consultations -----------------------------------------------------------------
  await bare.goto(`${base}?staff=${encodeURIComponent("Dr. Ada Lovelace")}`);
  await bare.getByRole("button", { name: "All consultations" }).click();
  await bare.getByRole("button", { name: /Open notes and chat of Post-op/ }).click();
  await bare.getByTestId("record-notes").waitFor();
  await shot(bare, "consultations");
  // The record: notes written once, amendments with time and author, "Add amendment".
  await bare.getByLabel("Add amendment").fill("Sutures removed on day 10; wound closed.");
  await bare.getByRole("button", { name: "Add amendment" }).click();
  await bare.getByText("Sutures removed on day 10; wound closed.").waitFor();
  await shot(bare, "consultation-record");

  // --- Past meetings -------------------------------------------------------------------
  await bare.getByRole("button", { name: "Back to home" }).click();
  await bare.getByTestId("open-past").click();
  await bare.getByRole("button", { name: "Open the chat of Case review: ward 3" }).click();
  await bare.getByTestId("past-transcript").waitFor();
  await shot(bare, "past-meetings");

  // --- Clinic view -----------------------------------------------------------------------
  await bare.getByRole("button", { name: "Back to home" }).click();
  await bare.getByTestId("open-clinic").click();
  await bare.getByRole("button", { name: "Add Follow-up: knee to calendar (.ics)" }).click();
  await bare.getByTestId("ics-saved").waitFor();
  await shot(bare, "clinic-view");
  await bare.getByRole("button", { name: "Cancel Follow-up: knee" }).click();
  await shot(bare, "clinic-cancel-confirm");
} finally {
  await context.close();
  await new Promise((r) => server.httpServer.close(r));
  rmSync(profile, { recursive: true, force: true });
}

for (const s of shots) console.log("saved", s);
if (errors.length) {
  console.error("page errors:\n" + errors.join("\n"));
  process.exitCode = 1;
}
