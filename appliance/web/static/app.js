// The call-taker console: signalling over /api/v1/ws (docs/api.md), media in one
// RTCPeerConnection per call. No build step, no external resources.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const calls = new Map(); // call id -> {info, pc, el, stream, timer}
let socket = null;
let retry = 500;
let nextId = 1;
const pending = new Map(); // request id -> {resolve, reject}
let iceServers = []; // from the welcome: [webrtc] STUN/TURN servers

function setPill(el, text, kind) {
  el.textContent = text;
  el.classList.remove("ok", "warn", "bad");
  if (kind) el.classList.add(kind);
}

function request(message) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, {resolve, reject});
    send({...message, id});
  });
}

function send(message) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(message));
  }
}

function connect() {
  socket = new WebSocket(`wss://${location.host}/api/v1/ws`);
  socket.onopen = () => {
    retry = 500;
    setPill($("#connection"), "Gateway online", "ok");
  };
  socket.onclose = (event) => {
    setPill($("#connection"), "Gateway offline — reconnecting", "bad");
    setPill($("#registration"), "Not registered", "warn");
    for (const [, p] of pending) p.reject(new Error("connection lost"));
    pending.clear();
    if (event.code === 1008 || event.code === 4401) { location.href = "/login"; return; }
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  };
  socket.onmessage = (event) => handle(JSON.parse(event.data));
}

function handle(m) {
  if ((m.type === "result" || m.type === "error") && m.id !== undefined && pending.has(m.id)) {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.type === "result") p.resolve(m); else p.reject(Object.assign(new Error(m.message), m));
    return;
  }
  switch (m.type) {
    case "welcome":
      $("#operator").textContent = m.operator.display_name || m.operator.name;
      iceServers = m.ice_servers || [];
      showRegistration(m.registration);
      if ($("#available").checked) send({type: "register"});
      for (const info of m.calls) showCall(info);
      break;
    case "registration": showRegistration(m); break;
    case "incoming": showAlert(m); break;
    case "call": showCall(m); break;
    case "sdp": onSdp(m); break;
    case "dtmf": {
      const c = calls.get(m.call);
      if (c) $(".dtmf", c.el).textContent += m.digit;
      break;
    }
    case "error":
      if (m.call && calls.has(m.call)) $(".cause", calls.get(m.call).el).textContent = m.message;
      else $("#mic").textContent = m.message;
      break;
  }
}

function showRegistration(r) {
  const on = r.state === "registered";
  setPill($("#registration"), on ? `Registered as ${r.aor}` : "Not registered", on ? "ok" : "warn");
}

async function microphone() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true});
    $("#mic").textContent = "";
    return stream;
  } catch (err) {
    $("#mic").textContent = err.name === "NotAllowedError"
      ? "Microphone access is blocked. Allow the microphone for this site in the browser, then try again."
      : `No microphone could be opened (${err.name}).`;
    throw err;
  }
}

function newPeer(id, stream) {
  const pc = new RTCPeerConnection({iceServers});
  if (stream) for (const track of stream.getTracks()) pc.addTrack(track, stream);
  pc.ontrack = (event) => {
    const c = calls.get(id);
    if (c) $("audio.remote", c.el).srcObject = event.streams[0] || new MediaStream([event.track]);
  };
  // Real-time text rides a reliable, ordered data channel with subprotocol "t140"
  // (RFC 8865). The box opens it when it offers; a channel it did not open is adopted.
  pc.ondatachannel = (event) => {
    const c = calls.get(id);
    if (c && event.channel.protocol === "t140") attachText(c, event.channel);
  };
  return pc;
}

// ----- real-time text (T.140, ITU-T T.140 / RFC 9071 §4.2.4) ---------------------------

const BOM = "\ufeff", BS = "\b", LINE = "\u2028", LOST = "\ufffd";

function newText() {
  // chars: what the caller's text shows; state: inside an escape or control string.
  return {channel: null, chars: [], state: "text", held: 0, afterCr: false, sent: [], queue: ""};
}

function attachText(c, channel) {
  if (!c.text) c.text = newText();
  const t = c.text;
  t.channel = channel;
  channel.onmessage = (event) => {
    if (typeof event.data === "string") showRemote(c, event.data);
  };
  const flush = () => { if (t.queue) { channel.send(t.queue); t.queue = ""; } };
  channel.onopen = flush;
  if (channel.readyState === "open") flush();
}

// Apply received T.140 text: BOM and controls are skipped (with bounded escape strings),
// BS erases one character or one new line (never a loss mark), CR LF / CR / LF / NEL /
// U+2028 are one new line, U+FFFD is shown as a visible mark.
function showRemote(c, data) {
  const t = c.text;
  for (const ch of data) {
    const code = ch.codePointAt(0);
    if (t.state === "esc") {
      t.state = ch === "[" ? "csi" : ch === "X" ? "sos" : "text";
      continue;
    }
    if (t.state === "csi") {
      if (ch === "m" || !/[0-9;:]/.test(ch) || ++t.held > 32) { t.state = "text"; t.held = 0; }
      continue;
    }
    if (t.state === "sos") {
      if (ch === "\u009c" || ++t.held > 256) { t.state = "text"; t.held = 0; }
      continue;
    }
    const afterCr = t.afterCr;
    t.afterCr = ch === "\r";
    if (ch === "\n" && afterCr) continue;
    if (ch === BOM) continue;
    if (ch === "\u001b") { t.state = "esc"; continue; }
    if (ch === "\u009b") { t.state = "csi"; continue; }
    if (ch === "\u0098") { t.state = "sos"; continue; }
    if (ch === BS) {
      if (t.chars.length && t.chars[t.chars.length - 1] !== LOST) t.chars.pop();
      continue;
    }
    if (ch === "\r" || ch === "\n" || ch === "\u0085" || ch === LINE) { t.chars.push("\n"); continue; }
    if (ch !== "\t" && (code < 0x20 || (code >= 0x7f && code <= 0x9f))) continue;
    t.chars.push(ch);
  }
  renderRemote(c);
}

function renderRemote(c) {
  const box = $(".remote-text", c.el);
  const nodes = [];
  let run = "";
  for (const ch of c.text.chars) {
    if (ch === LOST) {
      if (run) { nodes.push(document.createTextNode(run)); run = ""; }
      const mark = document.createElement("mark");
      mark.className = "lost";
      mark.title = "Text lost on the way here";
      mark.textContent = LOST;
      nodes.push(mark);
    } else {
      run += ch;
    }
  }
  if (run) nodes.push(document.createTextNode(run));
  box.replaceChildren(...nodes);
  box.scrollTop = box.scrollHeight;
  $(".rtt-lost", c.el).hidden = !c.text.chars.includes(LOST);
}

// Every change to the input goes out at once as T.140: erasures as BS (one per
// character), then the new characters, new lines as U+2028 (RFC 9071 §4.2.4).
function typed(c, area) {
  if (!c.text) c.text = newText();
  const t = c.text;
  const now = Array.from(area.value.replace(/\r\n?/g, "\n"));
  let same = 0;
  while (same < t.sent.length && same < now.length && t.sent[same] === now[same]) same++;
  const out = BS.repeat(t.sent.length - same) + now.slice(same).join("").replace(/\n/g, LINE);
  t.sent = now;
  if (!out) return;
  if (t.channel && t.channel.readyState === "open") t.channel.send(out);
  else t.queue += out;
}

function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000); // host candidates on a LAN come at once
  });
}

async function placeCall(target, textOnly) {
  const stream = textOnly ? null : await microphone();
  const pc = newPeer(null, stream);
  const channel = pc.createDataChannel("rtt", {protocol: "t140", ordered: true});
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc);
  let reply;
  try {
    reply = await request({type: "call", target, sdp: pc.localDescription.sdp});
  } catch (err) {
    pc.close();
    if (stream) stream.getTracks().forEach((t) => t.stop());
    $("#mic").textContent = `Call failed: ${err.message}`;
    return;
  }
  const c = ensureCall({call: reply.call, state: "calling", direction: "out", peer: {uri: target, name: ""}});
  c.pc = pc;
  c.stream = stream;
  attachText(c, channel);
  pc.ondatachannel = (event) => { if (event.channel.protocol === "t140") attachText(c, event.channel); };
  pc.ontrack = (event) => { $("audio.remote", c.el).srcObject = event.streams[0] || new MediaStream([event.track]); };
}

async function onSdp(m) {
  const c = calls.get(m.call);
  if (!c) return;
  if (m.kind === "answer") {
    await c.pc.setRemoteDescription({type: "answer", sdp: m.sdp});
    return;
  }
  // A text-only call (no audio in the box's offer) needs no microphone.
  const audio = /^m=audio /m.test(m.sdp);
  try {
    if (audio) c.stream = c.stream || await microphone();
  } catch (err) {
    send({type: "hangup", call: m.call});
    return;
  }
  c.pc = c.pc || newPeer(m.call, c.stream);
  await c.pc.setRemoteDescription({type: "offer", sdp: m.sdp});
  await c.pc.setLocalDescription(await c.pc.createAnswer());
  await gathered(c.pc);
  send({type: "sdp", call: m.call, kind: "answer", sdp: c.pc.localDescription.sdp});
}

function peerName(info) {
  const p = info.peer || {};
  return p.name ? `${p.name} (${p.uri})` : (p.uri || "Unknown caller");
}

function showAlert(info) {
  const existing = document.getElementById(`alert-${info.call}`);
  if (existing) return;
  const el = $("#alert-template").content.firstElementChild.cloneNode(true);
  el.id = `alert-${info.call}`;
  const who = $(".who", el);
  who.id = `who-${info.call}`;
  const text = (info.media || []).includes("text");
  const kind = !text ? "call" : (info.media || []).includes("audio") ? "call with real-time text" : "text-only call";
  who.textContent = `Incoming ${kind} from ${peerName(info)}`;
  el.setAttribute("aria-labelledby", who.id);
  $(".answer", el).onclick = () => answer(info);
  $(".decline", el).onclick = () => { send({type: "decline", call: info.call}); removeAlert(info.call); };
  $("#alerts").append(el);
  ring(true);
  document.title = "Incoming call — Call-taker console";
  $(".answer", el).focus();
}

function removeAlert(id) {
  const el = document.getElementById(`alert-${id}`);
  if (el) el.remove();
  if (!$("#alerts").children.length) { ring(false); document.title = "Call-taker console"; }
}

let ringer = null;
function ring(on) {
  if (on && !ringer) {
    try {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      const pulse = setInterval(() => {
        gain.gain.setValueAtTime(0.08, ctx.currentTime);
        gain.gain.setValueAtTime(0, ctx.currentTime + 0.4);
      }, 1500);
      ringer = {ctx, pulse};
    } catch (err) { ringer = null; }
  } else if (!on && ringer) {
    clearInterval(ringer.pulse);
    ringer.ctx.close();
    ringer = null;
  }
}

async function answer(info) {
  removeAlert(info.call);
  ensureCall({...info, type: "call", state: "connecting"});
  try {
    await request({type: "answer", call: info.call});
  } catch (err) {
    const c = calls.get(info.call);
    if (c) $(".cause", c.el).textContent = err.message;
  }
}

function ensureCall(info) {
  let c = calls.get(info.call);
  if (!c) {
    const el = $("#call-template").content.firstElementChild.cloneNode(true);
    el.id = `call-${info.call}`;
    c = {info, el, pc: null, stream: null, timer: null, text: null};
    calls.set(info.call, c);
    $(".hangup", el).onclick = () => send({type: "hangup", call: info.call});
    $(".hold", el).onclick = () => {
      const on = $(".hold", el).getAttribute("aria-pressed") !== "true";
      request({type: on ? "hold" : "resume", call: info.call})
        .catch((err) => { $(".cause", el).textContent = err.message; });
    };
    for (const key of "123456789*0#") {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = key;
      b.setAttribute("aria-label", `Key ${key}`);
      b.onclick = () => send({type: "dtmf", call: info.call, digits: key});
      $(".keypad", el).append(b);
    }
    $(".local-text", el).addEventListener("input", (event) => typed(c, event.target));
    $("#calls").prepend(el);
  }
  return c;
}

const STATES = {
  calling: "Calling…", ringing: "Ringing", connecting: "Connecting…", active: "Connected",
  ended: "Ended", "answered-elsewhere": "Answered in another window",
};

function showCall(info) {
  if (info.state === "ended" || info.state === "answered-elsewhere") removeAlert(info.call);
  if (!calls.has(info.call) && (info.state === "ended" || info.state === "answered-elsewhere")) return;
  if (!calls.has(info.call) && info.direction === "in" && info.state === "ringing") { showAlert(info); return; }
  const c = ensureCall(info);
  c.info = info;
  const el = c.el;
  $(".peer", el).textContent = peerName(info);
  let label = STATES[info.state] || info.state;
  if (info.state === "active" && info.held) label = "On hold";
  if (info.state === "active" && info.held_by_peer) label = "Held by the other party";
  setPill($(".state", el), label, info.state === "active" && !info.held ? "ok" : info.state === "ended" ? "bad" : "warn");
  const text = (info.media || []).includes("text");
  $(".rtt", el).hidden = !text && !c.text?.chars.length;
  $(".text-pill", el).hidden = !text;
  $(".local-text", el).disabled = !text || info.state !== "active";
  $(".hold", el).setAttribute("aria-pressed", info.held ? "true" : "false");
  $(".hold", el).disabled = info.state !== "active";
  $(".hangup", el).disabled = info.state === "ended";
  for (const b of el.querySelectorAll(".keypad button")) b.disabled = info.state !== "active";
  if (info.cause) $(".cause", el).textContent = info.state === "ended" ? `Call ended: ${info.cause}` : info.cause;
  if (info.answered_at && !c.timer && info.state === "active") {
    const start = Date.now() - Math.max(0, Date.now() / 1000 - info.answered_at) * 1000;
    c.timer = setInterval(() => {
      const s = Math.floor((Date.now() - start) / 1000);
      $(".timer", el).textContent = `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
    }, 1000);
  }
  if (info.state === "ended") {
    clearInterval(c.timer);
    if (c.pc) c.pc.close();
    if (c.stream) c.stream.getTracks().forEach((t) => t.stop());
    el.classList.add("ended");
    $(".hangup", el).textContent = "Hang up";
    setTimeout(() => { el.remove(); calls.delete(info.call); }, 60000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#dial").addEventListener("submit", (event) => {
    event.preventDefault();
    const target = $("#target").value.trim();
    if (target) placeCall(target, $("#text-only").checked).catch(() => {});
  });
  $("#available").addEventListener("change", (event) => {
    send({type: event.target.checked ? "register" : "unregister"});
  });
  connect();
});
