// Drives Debian's Chromium (headless, fake camera/microphone) as a browser guest of a
// ClinicMeet relay, for tests/tests/browser.rs. The page is the desktop app's UI over the
// browser engine: invite landing → "Join in this browser" → join form (code from the
// link, name) → device check → waiting room / meeting. Prints JSON lines on stdout
// ({"event":"invite","app_link":…,"code":…,"relay":…,"pin":…,"csp":…} first; any Content-
// Security-Policy violation is an {"event":"error","cmd":"csp"}); reads commands
// from stdin (one JSON object per line):
//   {"cmd":"stats","secs":5}          → {"event":"stats","tracks":[{id,kind,framesDecoded,fps,...}],
//                                        "sent":[{kind,framesEncoded,fps,codec,...}],"shown":[{w,h,playing}]}
//   {"cmd":"chat","text":"…"}         → {"event":"chat_sent"}
//   {"cmd":"wait_chat","text":"…"}    → {"event":"chat_seen"}
//   {"cmd":"screenshot","path":"…"}   → {"event":"screenshot"}
//   {"cmd":"wait_ended"}              → {"event":"ended","text":"…"}
//   {"cmd":"wait_connected"}         → {"event":"connected","transport":{protocol,local,remote}}
//   {"cmd":"wait_notice","text":"…"} → {"event":"notice","text":"…"} (the meeting's banner shows the text)
//   {"cmd":"mic"}                     → {"event":"mic","pressed":"true"|"false","locked":bool} (clicks the
//                                        microphone button; reports its state half a second later)
//   {"cmd":"wait_live","text":"…"}   → {"event":"live","text":"…","title":"…"} (the page's live region says the text)
//   {"cmd":"wait_title","text":"…"}  → {"event":"title","title":"…"} (document.title contains the text)
//   {"cmd":"quit"}
// `stats` also carries `transport`: the selected ICE candidate pair (protocol udp/tcp).
// Env: GUEST_URL (https://host:port/#CODE), GUEST_NAME, CHROMIUM, FAKE_AUDIO (wav), NO_H264=1,
// DENY_CAMERA=1 (the camera permission refused), SHOT_DIR (screenshots of the screens before
// the meeting: guest-invite.png, guest-device-check.png, guest-waiting.png).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createRequire } from "node:module";

const require = createRequire(process.env.PLAYWRIGHT_FROM ?? import.meta.url);
const { chromium } = require("playwright-core");

const out = (v) => process.stdout.write(JSON.stringify(v) + "\n");
const url = process.env.GUEST_URL;
const name = process.env.GUEST_NAME ?? "Browser Guest";

const args = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
  "--ignore-certificate-errors",
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream=fps=30",
  "--autoplay-policy=no-user-gesture-required",
];
if (process.env.FAKE_AUDIO) args.push(`--use-file-for-fake-audio-capture=${process.env.FAKE_AUDIO}`);
if (process.env.NO_H264) args.push("--disable-features=WebRtcH264WithOpenH264FFmpeg", "--disable-h264");

const profile = mkdtempSync(join(tmpdir(), "clinicmeet-guest-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args,
  ignoreHTTPSErrors: true,
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] ?? (await context.newPage());
page.on("console", (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
page.on("pageerror", (e) => process.stderr.write(`[page error] ${e}\n`));
// Anything the relay's Content-Security-Policy blocks fails the test: the page must
// work under it untouched.
await page.addInitScript(() => {
  document.addEventListener("securitypolicyviolation", (e) =>
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`),
  );
});
page.on("console", (m) => {
  if (m.text().startsWith("CSP violation")) out({ event: "error", cmd: "csp", error: m.text() });
});

if (process.env.NO_H264) {
  // A browser without H.264: hide it from the capability list before the page loads.
  await page.addInitScript(() => {
    const orig = RTCRtpSender.getCapabilities.bind(RTCRtpSender);
    RTCRtpSender.getCapabilities = (kind) => {
      const c = orig(kind);
      if (c && kind === "video") c.codecs = c.codecs.filter((x) => !/h264/i.test(x.mimeType));
      return c;
    };
  });
}

if (process.env.DENY_CAMERA) {
  // The user refuses the camera (the microphone is allowed).
  await page.addInitScript(() => {
    const md = navigator.mediaDevices;
    const orig = md.getUserMedia.bind(md);
    md.getUserMedia = (c) => (c && c.video ? Promise.reject(new DOMException("Permission denied", "NotAllowedError")) : orig(c));
  });
}

const shot = async (file) => {
  if (process.env.SHOT_DIR) await page.screenshot({ path: join(process.env.SHOT_DIR, file) });
};

// A network change while the page loads (an interface coming up) aborts the load;
// a person would reload, and so does this script, a bounded number of times.
let csp = null;
for (let attempt = 1; ; attempt++) {
  try {
    csp = (await page.goto(url))?.headers()["content-security-policy"] ?? null;
    break;
  } catch (e) {
    if (attempt >= 3 || !/ERR_NETWORK_CHANGED/.test(String(e))) throw e;
    await new Promise((r) => setTimeout(r, 500));
  }
}
// The invite link's landing page: the desktop app's deep link, or join here.
await page.getByTestId("invite").waitFor({ timeout: 20000 });
// The relay's address and pin come from /invite-info; wait until the link carries them.
await page.waitForFunction(() => /[?]relay=/.test(document.querySelector("[data-testid=open-app]")?.getAttribute("href") ?? ""), null, { timeout: 10000 }).catch(() => undefined);
const link = new URL((await page.getByTestId("open-app").getAttribute("href")) ?? "");
out({
  event: "invite",
  app_link: link.href,
  code: decodeURIComponent(link.pathname.replace(/^\/+/, "")),
  relay: link.searchParams.get("relay"),
  pin: link.searchParams.get("pin"),
  csp,
});
await shot("guest-invite.png");
await page.getByTestId("join-browser").click();
await page.getByTestId("name").fill(name);
await page.getByTestId("continue").click();
// Device check: preview and mic meter; a browser without H.264 is told so here.
if (process.env.NO_H264) {
  const text = await page.getByTestId("media-error").textContent({ timeout: 10000 });
  out({ event: "media_error", text });
}
if (process.env.DENY_CAMERA) {
  const text = await page.getByTestId("device-error").textContent({ timeout: 10000 });
  out({ event: "device_error", text });
}
// The join button waits for the device list; the preview needs a moment to show.
await page.getByTestId("join").waitFor();
await page.waitForFunction(() => !document.querySelector("[data-testid=join]")?.hasAttribute("disabled"), null, { timeout: 10000 }).catch(() => undefined);
await page.waitForTimeout(500);
await shot("guest-device-check.png");
await page.getByTestId("join").click();
const first = await Promise.race([
  page.getByTestId("waiting").waitFor({ timeout: 20000 }).then(() => "waiting"),
  page.getByTestId("meeting").waitFor({ timeout: 20000 }).then(() => "meeting"),
]);
// (Before telling the test, which then admits at once.)
if (first === "waiting") await shot("guest-waiting.png");
out({ event: first });
if (first === "waiting") {
  await page.getByTestId("meeting").waitFor({ timeout: 60000 });
  out({ event: "meeting" });
}

async function rtpStats() {
  return page.evaluate(async () => {
    const pc = window.clinicmeetGuest?.peer;
    if (!pc) return [];
    const r = await pc.getStats();
    const v = [];
    r.forEach((s) => {
      if (s.type === "inbound-rtp") {
        v.push({ id: s.id, kind: s.kind, mid: s.mid, framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0,
          nackCount: s.nackCount ?? 0, pliCount: s.pliCount ?? 0, bytesReceived: s.bytesReceived ?? 0,
          width: s.frameWidth ?? 0, height: s.frameHeight ?? 0, t: s.timestamp });
      } else if (s.type === "outbound-rtp") {
        v.push({ id: s.id, kind: s.kind, mid: s.mid, outbound: true, framesEncoded: s.framesEncoded ?? 0, packetsSent: s.packetsSent ?? 0,
          nackCount: s.nackCount ?? 0, pliCount: s.pliCount ?? 0, firCount: s.firCount ?? 0,
          retransmittedPacketsSent: s.retransmittedPacketsSent ?? 0, bytesSent: s.bytesSent ?? 0, encoder: s.encoderImplementation ?? "",
          codec: r.get(s.codecId)?.mimeType ?? "", width: s.frameWidth ?? 0, height: s.frameHeight ?? 0, t: s.timestamp });
      }
    });
    return v;
  });
}

// The selected ICE candidate pair of the guest's peer connection.
async function transport() {
  return page.evaluate(async () => {
    const pc = window.clinicmeetGuest?.peer;
    if (!pc) return null;
    const r = await pc.getStats();
    let pair = null;
    r.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) pair = r.get(s.selectedCandidatePairId);
    });
    if (!pair) r.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    if (!pair) return { state: pc.connectionState };
    const l = r.get(pair.localCandidateId) ?? {};
    const m = r.get(pair.remoteCandidateId) ?? {};
    return { state: pc.connectionState, protocol: l.protocol, local: `${l.address}:${l.port}`, localType: l.candidateType,
      remote: `${m.address}:${m.port}`, remoteProtocol: m.protocol, rtt: pair.currentRoundTripTime };
  });
}

// What the browser sends: feedback it got for its own tracks.
async function outbound() {
  return (await rtpStats()).filter((x) => x.outbound);
}

/** The chat is a side panel, closed at first (as in the desktop app). */
async function openChat() {
  if (!(await page.getByTestId("chat").isVisible())) await page.getByTestId("toggle-chat").click();
  await page.getByTestId("chat-input").waitFor({ timeout: 5000 });
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  let c;
  try {
    c = JSON.parse(line);
  } catch {
    continue;
  }
  try {
    if (c.cmd === "stats") {
      const a = await rtpStats();
      await page.waitForTimeout((c.secs ?? 5) * 1000);
      const b = await rtpStats();
      const rate = (x, field) => {
        const y = a.find((z) => z.id === x.id);
        const dt = y ? (x.t - y.t) / 1000 : 0;
        return y && dt > 0 ? (x[field] - y[field]) / dt : 0;
      };
      const tracks = b.filter((x) => !x.outbound).map((x) => ({ ...x, fps: rate(x, "framesDecoded"), bytesPerSec: rate(x, "bytesReceived") }));
      const sent = b.filter((x) => x.outbound).map((x) => ({ ...x, fps: rate(x, "framesEncoded"), bytesPerSec: rate(x, "bytesSent") }));
      const shown = await page.evaluate(() =>
        [...document.querySelectorAll("[data-testid=remote-video]")].map((v) => ({ w: v.videoWidth, h: v.videoHeight, playing: !v.paused })),
      );
      // What the page sends from: the senders' tracks.
      const senders = await page.evaluate(() =>
        (window.clinicmeetGuest?.peer?.getSenders() ?? []).map((x) => ({ kind: x.track?.kind ?? null, state: x.track?.readyState ?? null, enabled: x.track?.enabled ?? null })),
      );
      out({ event: "stats", tracks, sent, senders, shown, transport: await transport(), outbound: await outbound() });
    } else if (c.cmd === "chat") {
      await openChat();
      await page.getByTestId("chat-input").fill(c.text);
      await page.getByTestId("chat-send").click();
      await page.getByTestId("chat").getByText(c.text).waitFor({ timeout: 10000 });
      out({ event: "chat_sent" });
    } else if (c.cmd === "wait_chat") {
      await openChat();
      await page.getByTestId("chat").getByText(c.text).waitFor({ timeout: 20000 });
      out({ event: "chat_seen" });
    } else if (c.cmd === "screenshot") {
      await page.screenshot({ path: c.path });
      out({ event: "screenshot" });
    } else if (c.cmd === "wait_ended") {
      await page.getByTestId("ended").waitFor({ timeout: 20000 });
      out({ event: "ended", text: await page.getByTestId("ended").textContent() });
    } else if (c.cmd === "wait_notice") {
      const notice = page.getByTestId("notice").filter({ hasText: c.text });
      await notice.waitFor({ timeout: 20000 });
      out({ event: "notice", text: await notice.textContent() });
    } else if (c.cmd === "mic") {
      const mic = page.getByTestId("toggle-mic");
      // force: a locked button is aria-disabled, which Playwright will not click; a person can.
      await mic.click({ timeout: 5000, force: true });
      await page.waitForTimeout(500);
      out({ event: "mic", pressed: await mic.getAttribute("aria-pressed"), locked: (await mic.getAttribute("aria-disabled")) === "true" });
    } else if (c.cmd === "wait_connected") {
      await page.waitForFunction(() => window.clinicmeetGuest?.peer?.connectionState === "connected", null, { timeout: 60000, polling: 50 });
      out({ event: "connected", transport: await transport() });
    } else if (c.cmd === "wait_live") {
      const live = page.getByTestId("live-region");
      await page.waitForFunction((t) => document.querySelector("[data-testid=live-region]")?.textContent?.includes(t), c.text, { timeout: 20000 });
      out({ event: "live", text: await live.textContent(), title: await page.title() });
    } else if (c.cmd === "wait_title") {
      await page.waitForFunction((t) => document.title.includes(t), c.text, { timeout: 20000 });
      out({ event: "title", title: await page.title() });
    } else if (c.cmd === "quit") {
      break;
    }
  } catch (e) {
    out({ event: "error", cmd: c.cmd, error: String(e) });
  }
}
await context.close();
process.exit(0);
