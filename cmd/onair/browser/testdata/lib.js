// Helpers for onair's browser tests, loaded with <script src="lib.js"> and
// called from Go through WebDriver (Page.Exec awaits returned promises).
// Plain script, no modules: every function is a global.
"use strict";

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// rejectAfter races p against a timeout that names what was awaited.
function rejectAfter(p, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

// watchFrames calls onFrame(presentedSoFar) for every frame the <video>
// presents, counted from requestVideoFrameCallback's presentedFrames (so a
// frame is counted even if a callback was skipped). It returns a stop function.
function watchFrames(video, onFrame) {
  let base = null;
  let handle = 0;
  let stopped = false;
  const cb = (_now, meta) => {
    if (stopped) return;
    if (base === null) base = meta.presentedFrames - 1;
    onFrame(meta.presentedFrames - base);
    handle = video.requestVideoFrameCallback(cb);
  };
  handle = video.requestVideoFrameCallback(cb);
  return () => {
    stopped = true;
    video.cancelVideoFrameCallback(handle);
  };
}

// countFrames resolves with the number of frames the <video> presents in
// the next ms milliseconds.
function countFrames(video, ms) {
  return new Promise((resolve) => {
    let n = 0;
    const stop = watchFrames(video, (c) => { n = c; });
    setTimeout(() => { stop(); resolve(n); }, ms);
  });
}

// waitFrames resolves with the milliseconds it took the <video> to present
// n frames, or rejects after timeoutMs: a frame-count assertion that does not
// depend on how fast the machine is.
function waitFrames(video, n, timeoutMs) {
  const t0 = performance.now();
  let stop = () => {};
  let seen = 0;
  const p = new Promise((resolve) => {
    stop = watchFrames(video, (c) => {
      seen = c;
      if (c >= n) resolve(Math.round(performance.now() - t0));
    });
  });
  return rejectAfter(p, timeoutMs, `waiting for ${n} video frames`)
    .catch((e) => { throw new Error(`${e.message}; presented ${seen} frames, ${videoState(video)}`); })
    .finally(stop);
}

// videoState describes a <video> for failure messages.
function videoState(video) {
  const q = video.getVideoPlaybackQuality();
  return `readyState=${video.readyState} paused=${video.paused} ` +
    `size=${video.videoWidth}x${video.videoHeight} currentTime=${video.currentTime.toFixed(2)} ` +
    `totalVideoFrames=${q.totalVideoFrames} dropped=${q.droppedVideoFrames} error=${video.error && video.error.message}`;
}

// rmsMeter feeds the stream's audio into an AnalyserNode and calls
// onRMS(rms) about every 10 ms with the RMS of the last 2048 samples (~43 ms
// at 48 kHz, so consecutive windows overlap and no short beep is missed).
// A remote WebRTC stream must also be attached to a media element (whepPlay
// does) or Chromium feeds WebAudio silence. Returns a stop function.
function rmsMeter(stream, onRMS) {
  const ctx = new AudioContext();
  const src = ctx.createMediaStreamSource(stream);
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 2048;
  src.connect(analyser);
  // Connected to the destination through a silent gain so the graph is pulled.
  const mute = ctx.createGain();
  mute.gain.value = 0;
  analyser.connect(mute).connect(ctx.destination);
  ctx.resume();
  const buf = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    onRMS(Math.sqrt(sum / buf.length));
  }, 10);
  return () => {
    clearInterval(timer);
    src.disconnect();
    ctx.close();
  };
}

// audioEnergy resolves with the highest RMS (0..1) of the stream's audio
// over the next ms milliseconds; 0 means silence (or no audio track).
function audioEnergy(stream, ms) {
  if (stream.getAudioTracks().length === 0) return Promise.resolve(0);
  return new Promise((resolve) => {
    let max = 0;
    const stop = rmsMeter(stream, (rms) => { if (rms > max) max = rms; });
    setTimeout(() => { stop(); resolve(max); }, ms);
  });
}

// waitAudio resolves with the first RMS above threshold, or rejects after
// timeoutMs with the highest RMS seen.
function waitAudio(stream, threshold, timeoutMs) {
  if (stream.getAudioTracks().length === 0) return Promise.reject(new Error("stream has no audio track"));
  let max = 0;
  let stop = () => {};
  const p = new Promise((resolve) => {
    stop = rmsMeter(stream, (rms) => {
      if (rms > max) max = rms;
      if (rms > threshold) resolve(rms);
    });
  });
  return rejectAfter(p, timeoutMs, `waiting for audio RMS > ${threshold}`)
    .catch((e) => { throw new Error(`${e.message}; highest RMS ${max}`); })
    .finally(stop);
}

// iceGatheringComplete resolves when pc has gathered all its candidates, so
// the local description carries them (WHIP/WHEP without trickle ICE).
function iceGatheringComplete(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  const p = new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
  return rejectAfter(p, timeoutMs, "ICE gathering");
}

// connected resolves when pc's connectionState is "connected"; it rejects
// on "failed" or "closed", or after timeoutMs.
function connected(pc, timeoutMs) {
  const p = new Promise((resolve, reject) => {
    const check = () => {
      const s = pc.connectionState;
      if (s === "connected") resolve();
      if (s === "failed" || s === "closed") reject(new Error(`peer connection ${s}`));
    };
    pc.addEventListener("connectionstatechange", check);
    check();
  });
  return rejectAfter(p, timeoutMs, "peer connection");
}

// offerAnswer runs the WHIP/WHEP HTTP exchange (RFC 9725 section 4.2):
// POST the complete offer as application/sdp, expect 201 Created with the
// answer and a Location header naming the session resource.
async function offerAnswer(kind, url, pc, opts) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc, opts.iceTimeoutMs || 5000);
  const headers = { "Content-Type": "application/sdp" };
  if (opts.token) headers["Authorization"] = "Bearer " + opts.token;
  const res = await fetch(url, { method: "POST", headers, body: pc.localDescription.sdp });
  const body = await res.text();
  if (res.status !== 201) {
    throw new Error(`${kind} POST ${url}: HTTP ${res.status}, want 201 Created: ${body.slice(0, 300)}`);
  }
  const loc = res.headers.get("Location");
  if (!loc) {
    // Cross-origin, the server must also send Access-Control-Expose-Headers: Location.
    throw new Error(`${kind} POST ${url}: 201 without a Location header`);
  }
  await pc.setRemoteDescription({ type: "answer", sdp: body });
  const resource = new URL(loc, res.url).href; // Location may be relative
  return {
    pc,
    resource,
    // stop DELETEs the session resource and closes the peer connection;
    // it resolves with the DELETE's HTTP status.
    async stop() {
      // DELETE first: closing the connection first lets the server end
      // the session on its own, and the DELETE would find nothing (404).
      const h = opts.token ? { Authorization: "Bearer " + opts.token } : {};
      const r = await fetch(resource, { method: "DELETE", headers: h });
      pc.close();
      return r.status;
    },
  };
}

// whipPublish sends every track of stream to a WHIP endpoint (RFC 9725).
// opts: {token, iceServers, iceTimeoutMs}. Resolves with
// {pc, resource, stop()} once the answer is applied; await
// connected(session.pc, ms) to know media flows.
async function whipPublish(url, stream, opts = {}) {
  const pc = new RTCPeerConnection({ iceServers: opts.iceServers || [], bundlePolicy: "max-bundle" });
  for (const track of stream.getTracks()) {
    pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  }
  try {
    return await offerAnswer("WHIP", url, pc, opts);
  } catch (e) {
    pc.close();
    throw e;
  }
}

// whepPlay receives one video and one audio track from a WHEP endpoint
// (the same exchange with a recvonly offer) and plays them in videoEl.
// Resolves with {pc, resource, stream, stop()}.
async function whepPlay(url, videoEl, opts = {}) {
  const pc = new RTCPeerConnection({ iceServers: opts.iceServers || [], bundlePolicy: "max-bundle" });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addTransceiver("audio", { direction: "recvonly" });
  const stream = new MediaStream();
  pc.addEventListener("track", (e) => {
    stream.addTrack(e.track);
    if (videoEl.srcObject !== stream) videoEl.srcObject = stream;
    videoEl.play().catch(() => {}); // autoplay is allowed by the test flags
  });
  try {
    const session = await offerAnswer("WHEP", url, pc, opts);
    session.stream = stream;
    return session;
  } catch (e) {
    pc.close();
    throw e;
  }
}

// inboundVideoStats resolves with the inbound-rtp video stats of pc
// (framesDecoded, framesReceived, packetsLost, ...), or null.
async function inboundVideoStats(pc) {
  const stats = await pc.getStats();
  for (const s of stats.values()) {
    if (s.type === "inbound-rtp" && s.kind === "video") return s;
  }
  return null;
}
