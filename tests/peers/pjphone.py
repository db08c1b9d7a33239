#!/usr/bin/env python3
"""Real SIP phones for ctiswitch tests, built on PJSIP's pjsua2 (PyPI pjsua2-python).

One process, one pjsua2 Endpoint, any number of accounts (phones). Each scenario prints one
JSON object, on one line, on stdout (pjlib's own logging goes to stderr) that the Rust test
reads and judges. Every loop is bounded in time.

Scenarios:
  register  --phone USER:PASS            register once, report the final status code
  call      --caller USER:PASS --callee USER:PASS
            A calls B through the switch; B rings, answers after --answer-delay; each plays
            its own tone and records what it hears; A sends DTMF (RFC 4733); one side hangs
            up. Reports call states, the caller's SIP Call-ID, timings, the negotiated codec,
            RTP counters, the DTMF digits B received and the tone power in each recording.

Audio analysis: each recording is cut into 100 ms blocks; for every tone frequency the result
holds its share of the recording's power (`<freq>`: Goertzel power over total power, summed
over all blocks; 1.0 = a pure tone, ~0 = absent) and how many seconds of blocks it dominated
(`<freq>_seconds`: blocks where that tone carries more than half of a non-silent block).
"""
import argparse
import functools
import gc
import json
import math
import os
import random
import struct
import sys
import tempfile
import time
import traceback
import wave

import pjsua2 as pj

LOOP_STEP_MS = 20
BLOCK_SECONDS = 0.1
# A block quieter than this (RMS, 16-bit scale) is silence: no media, or a DTMF gap.
SILENCE_RMS = 100.0

ERRORS = []


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def guarded(fn):
    """pjsua2 swallows exceptions raised in callbacks (and keeps their tracebacks, which keeps
    Call objects alive past libDestroy): log them and report them in the JSON instead."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - reported to the test
            text = traceback.format_exc()
            log(text)
            ERRORS.append(f"{fn.__name__}: {text.strip().splitlines()[-1]}")
            return None

    return wrapper


def write_tone(path, freq, seconds=2.0, rate=8000, amplitude=0.3):
    """A 16-bit mono sine WAV (a whole number of periods, so the looping player is seamless)."""
    frames = int(seconds * rate)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        data = bytearray()
        for n in range(frames):
            v = int(32767 * amplitude * math.sin(2 * math.pi * freq * n / rate))
            data += struct.pack("<h", v)
        w.writeframes(bytes(data))


def read_wav(path):
    with wave.open(path, "rb") as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: expected 16-bit samples, got {width * 8}")
    samples = struct.unpack("<%dh" % (len(raw) // 2), raw)
    if channels > 1:
        samples = samples[::channels]
    return rate, samples


def goertzel_power(samples, rate, freq):
    """Power of one frequency, normalised per sample: a sine of amplitude A gives A^2/4."""
    if not samples:
        return 0.0
    k = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + k * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    return power / (len(samples) ** 2)


def analyse(path, freqs):
    """Per frequency: its share of the recording's power, and the seconds it dominated.

    Block-wise (100 ms), so that jitter-buffer frame drops/inserts and clock drift, which
    break the phase of one long Goertzel window, do not hide a tone that is there."""
    rate, samples = read_wav(path)
    n = max(int(rate * BLOCK_SECONDS), 1)
    total_energy = 0.0
    tone_energy = {f: 0.0 for f in freqs}
    dominated = {f: 0 for f in freqs}
    active_blocks = 0
    for start in range(0, len(samples) - n + 1, n):
        block = samples[start : start + n]
        energy = sum(float(x) * x for x in block)
        total_energy += energy
        mean_square = energy / n
        active = math.sqrt(mean_square) >= SILENCE_RMS
        active_blocks += active
        for f in freqs:
            # Sine power is A^2/2 per sample; Goertzel gives A^2/4: share = 2 * g / mean_sq.
            e = 2.0 * goertzel_power(block, rate, f) * n
            tone_energy[f] += e
            if active and e > 0.5 * energy:
                dominated[f] += 1
    result = {
        "seconds": len(samples) / rate if rate else 0.0,
        "rms": math.sqrt(total_energy / max(len(samples), 1)),
        "active_seconds": active_blocks * BLOCK_SECONDS,
    }
    for f in freqs:
        result[str(f)] = (tone_energy[f] / total_energy) if total_energy > 0 else 0.0
        result[f"{f}_seconds"] = round(dominated[f] * BLOCK_SECONDS, 3)
    return result


class Phone(pj.Account):
    def __init__(self, runner, user):
        super().__init__()
        self.runner = runner
        self.user = user
        self.reg_codes = []
        self.calls = []

    @guarded
    def onRegState(self, prm):
        self.reg_codes.append(prm.code)
        log(f"{self.user}: reg state {prm.code} {prm.reason}")

    @guarded
    def onIncomingCall(self, prm):
        call = PhoneCall(self, prm.callId)
        call.incoming_at = time.time()
        self.calls.append(call)
        op = pj.CallOpParam()
        if self.runner.answer_code == 200:
            op.statusCode = 180
            call.answer(op)
            call.answer_at = time.time() + self.runner.answer_delay
        else:
            op.statusCode = self.runner.answer_code
            call.answer(op)


class PhoneCall(pj.Call):
    def __init__(self, account, call_id=pj.PJSUA_INVALID_ID):
        super().__init__(account, call_id)
        self.account = account
        self.states = []
        self.last_code = None
        self.call_id = None
        self.incoming_at = None
        self.early_at = None
        self.answered_at = None
        self.confirmed_at = None
        self.disconnected_at = None
        self.connect_duration = None
        self.dtmf = ""
        self.dtmf_methods = []
        self.answer_at = None
        self.player = None
        self.recorder = None
        self.record_path = None
        self.media_at = None
        self.codec = None
        self.rtp = None

    @guarded
    def onCallState(self, prm):
        ci = self.getInfo()
        now = time.time()
        self.states.append(ci.stateText)
        self.last_code = ci.lastStatusCode
        if ci.callIdString and self.call_id is None:
            self.call_id = ci.callIdString
        if ci.state == pj.PJSIP_INV_STATE_EARLY and self.early_at is None:
            self.early_at = now
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = now
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and self.disconnected_at is None:
            self.disconnected_at = now
            self.connect_duration = ci.connectDuration.sec + ci.connectDuration.msec / 1000.0
            # Stop recording now: what follows the call is not part of it.
            if self.recorder is not None:
                self.recorder = None
        log(f"{self.account.user}: call {ci.stateText} {ci.lastStatusCode}")

    @guarded
    def onCallMediaState(self, prm):
        ci = self.getInfo()
        for i, mi in enumerate(ci.media):
            if mi.type == pj.PJMEDIA_TYPE_AUDIO and mi.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                media = self.getAudioMedia(i)
                runner = self.account.runner
                if self.player is None:
                    self.player = pj.AudioMediaPlayer()
                    self.player.createPlayer(runner.tone_file(self.account.user), 0)
                    self.recorder = pj.AudioMediaRecorder()
                    self.record_path = os.path.join(
                        runner.workdir, f"heard-by-{self.account.user}.wav"
                    )
                    self.recorder.createRecorder(self.record_path)
                    self.media_at = time.time()
                self.player.startTransmit(media)
                if self.recorder is not None:
                    media.startTransmit(self.recorder)
                try:
                    si = self.getStreamInfo(i)
                    self.codec = f"{si.codecName}/{si.codecClockRate}"
                except pj.Error as e:
                    log(f"stream info: {e.info()}")

    @guarded
    def onDtmfDigit(self, prm):
        self.dtmf += prm.digit
        self.dtmf_methods.append(
            "rfc2833" if prm.method == pj.PJSUA_DTMF_METHOD_RFC2833 else "info"
        )
        log(f"{self.account.user}: DTMF {prm.digit}")

    def snapshot_rtp(self):
        """RTP counters of the first audio stream, while the call is up."""
        try:
            st = self.getStreamStat(0)
            self.rtp = {
                "rx_packets": st.rtcp.rxStat.pkt,
                "tx_packets": st.rtcp.txStat.pkt,
                "rx_lost": st.rtcp.rxStat.loss,
            }
        except pj.Error as e:
            log(f"stream stat: {e.info()}")

    def summary(self):
        def span(a, b):
            return round(b - a, 3) if a is not None and b is not None else None

        return {
            "call_id": self.call_id,
            "states": self.states,
            "last_code": self.last_code,
            "connected": self.confirmed_at is not None,
            "times": {
                "incoming": self.incoming_at,
                "early": self.early_at,
                "answered": self.answered_at,
                "confirmed": self.confirmed_at,
                "disconnected": self.disconnected_at,
            },
            "ring_seconds": span(self.incoming_at or self.early_at, self.answered_at or self.confirmed_at),
            "talk_seconds": span(self.confirmed_at, self.disconnected_at),
            "connect_duration": self.connect_duration,
            "dtmf": self.dtmf,
            "dtmf_methods": sorted(set(self.dtmf_methods)),
            "codec": self.codec,
            "rtp": self.rtp,
            "record": self.record_path,
        }


class Runner:
    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir or tempfile.mkdtemp(prefix="pjphone-")
        os.makedirs(self.workdir, exist_ok=True)
        self.answer_code = args.answer_code
        self.answer_delay = args.answer_delay
        self.tones = {}
        self.phones = []
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "ctiswitch-test-pjsua2"
        cfg.logConfig.level = args.pj_log
        cfg.logConfig.consoleLevel = args.pj_log
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        self.ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        tcfg.publicAddress = "127.0.0.1"
        kind = pj.PJSIP_TRANSPORT_TCP if args.transport == "tcp" else pj.PJSIP_TRANSPORT_UDP
        self.transport = self.ep.transportCreate(kind, tcfg)
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        if args.codec:
            wanted = args.codec.lower() + "/"
            found = False
            for c in self.ep.codecEnum2():
                on = c.codecId.lower().startswith(wanted)
                found = found or on
                self.ep.codecSetPriority(c.codecId, 255 if on else 0)
            if not found:
                raise SystemExit(f"codec {args.codec} not available")
        # RTP ports: a random even base in 40000-59999, clear of the switch's default range
        # (20000-29999); pjsua steps on to the next pair when one is taken.
        self.rtp_base = 40000 + 2 * random.randrange(0, 9000)

    def tone_file(self, user):
        freq = self.tones.get(user, 0)
        path = os.path.join(self.workdir, f"tone-{user}-{freq}.wav")
        if not os.path.exists(path):
            write_tone(path, freq if freq else 1, amplitude=0.3 if freq else 0.0)
        return path

    def uri_params(self):
        return ";transport=tcp" if self.args.transport == "tcp" else ""

    def phone(self, cred, tone=0):
        user, _, password = cred.partition(":")
        acfg = pj.AccountConfig()
        switch = self.args.switch
        acfg.idUri = f"sip:{user}@{switch}"
        acfg.regConfig.registrarUri = f"sip:{switch}{self.uri_params()}"
        acfg.regConfig.timeoutSec = self.args.expires
        acfg.regConfig.retryIntervalSec = 0
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        mt = acfg.mediaConfig.transportConfig
        mt.boundAddress = "127.0.0.1"
        mt.publicAddress = "127.0.0.1"
        mt.port = self.rtp_base + 100 * len(self.phones)
        mt.portRange = 0
        acfg.natConfig.iceEnabled = False
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        phone = Phone(self, user)
        self.tones[user] = tone
        phone.create(acfg)
        self.phones.append(phone)
        return phone

    def pump(self, seconds, until=None):
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.ep.libHandleEvents(LOOP_STEP_MS)
            self.answer_pending()
            if until is not None and until():
                return True
        return until() if until is not None else True

    def answer_pending(self):
        for phone in self.phones:
            for call in phone.calls:
                if call.answer_at is not None and time.time() >= call.answer_at:
                    call.answer_at = None
                    op = pj.CallOpParam()
                    op.statusCode = 200
                    try:
                        call.answer(op)
                        call.answered_at = time.time()
                    except pj.Error as e:
                        ERRORS.append(f"answer: {e.info()}")
                        log(f"answer failed: {e.info()}")

    def wait_registered(self, phone, seconds=10):
        self.pump(seconds, lambda: any(c // 100 != 1 for c in phone.reg_codes))
        return phone.reg_codes[-1] if phone.reg_codes else None

    def all_calls(self):
        return [c for p in self.phones for c in p.calls]

    def close(self):
        """Hang up what is left, release every Call and Account, then destroy the library.

        A pjsua2 object that outlives libDestroy aborts the process on an assertion when it
        is finally collected, so no local variable here may hold a Call or an Account."""
        try:
            if any(c.disconnected_at is None for c in self.all_calls()):
                self.ep.hangupAllCalls()
                self.pump(3, lambda: all(c.disconnected_at for c in self.all_calls()))
        except pj.Error as e:
            log(f"hangup at close: {e.info()}")
        self.release_calls()
        gc.collect()
        self.shutdown_accounts()
        if self.phones:
            self.pump(1)  # let the un-REGISTERs go out
        self.phones = []
        gc.collect()
        self.ep.libDestroy()

    def release_calls(self):
        for phone in self.phones:
            for call in phone.calls:
                call.player = None
                call.recorder = None
            phone.calls = []

    def shutdown_accounts(self):
        for phone in self.phones:
            try:
                phone.shutdown()
            except pj.Error as e:
                log(f"account shutdown: {e.info()}")


def scenario_register(runner, args):
    phone = runner.phone(args.phone)
    code = runner.wait_registered(phone)
    result = {"codes": list(phone.reg_codes), "final": code}
    if args.unregister and code == 200:
        n = len(phone.reg_codes)
        phone.setRegistration(False)
        runner.pump(5, lambda: len(phone.reg_codes) > n)
        result["unregister_codes"] = phone.reg_codes[n:]
    return result


def scenario_call(runner, args):
    a = runner.phone(args.caller, tone=args.tone_a)
    b = runner.phone(args.callee, tone=args.tone_b)
    result = {
        "transport": args.transport,
        "register": {"a": runner.wait_registered(a), "b": runner.wait_registered(b)},
    }
    callee_user = args.dial or args.callee.partition(":")[0]
    call = PhoneCall(a)
    a.calls.append(call)
    op = pj.CallOpParam(True)
    call.makeCall(f"sip:{callee_user}@{args.switch}{runner.uri_params()}", op)
    runner.pump(
        args.setup_timeout if args.cancel_after is None else args.cancel_after,
        lambda: call.confirmed_at is not None or call.disconnected_at is not None,
    )
    if call.confirmed_at is not None and call.disconnected_at is None:
        runner.pump(args.talk, lambda: call.disconnected_at is not None)
        if args.dtmf and call.disconnected_at is None:
            prm = pj.CallSendDtmfParam()
            prm.digits = args.dtmf
            prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
            try:
                call.sendDtmf(prm)
            except pj.Error as e:
                ERRORS.append(f"sendDtmf: {e.info()}")
            runner.pump(
                0.5 * len(args.dtmf) + 1.0,
                lambda: sum(len(c.dtmf) for c in b.calls) >= len(args.dtmf)
                or call.disconnected_at is not None,
            )
            runner.pump(0.5, lambda: call.disconnected_at is not None)
        for c in [call] + b.calls:
            if c.disconnected_at is None:
                c.snapshot_rtp()
        if call.disconnected_at is None:
            result["hangup_at"] = time.time()
            if args.hangup == "callee" and b.calls:
                b.calls[0].hangup(pj.CallOpParam())
            else:
                call.hangup(pj.CallOpParam())
    elif args.cancel_after is not None and call.disconnected_at is None:
        call.hangup(pj.CallOpParam())
    runner.pump(
        5,
        lambda: call.disconnected_at is not None and all(c.disconnected_at for c in b.calls),
    )
    result["caller"] = call.summary()
    result["callee"] = b.calls[0].summary() if b.calls else None
    result["callee_calls"] = len(b.calls)
    freqs = [args.tone_a, args.tone_b]
    # Drop players/recorders; the bridge removes their ports (and the writer finalises its
    # WAV header) asynchronously, so keep pumping until both files read back.
    for c in [call] + b.calls:
        c.player = None
        c.recorder = None
    call = c = None
    gc.collect()
    paths = {"caller": a.calls[0].record_path, "callee": b.calls[0].record_path if b.calls else None}
    audio = {}
    deadline = time.time() + 3
    while True:
        runner.pump(0.2)
        pending = []
        for who, path in paths.items():
            if who in audio or not path or not os.path.exists(path):
                continue
            try:
                audio[who] = analyse(path, freqs)
            except (wave.Error, EOFError, ValueError, struct.error) as e:
                pending.append(f"{who}: {path}: {e}")
        if not pending:
            break
        if time.time() >= deadline:
            ERRORS.extend(f"cannot analyse {p}" for p in pending)
            break
    result["audio"] = audio
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["register", "call"])
    p.add_argument("--switch", required=True, help="host:port of the switch")
    p.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    p.add_argument("--phone")
    p.add_argument("--unregister", action="store_true")
    p.add_argument("--caller")
    p.add_argument("--callee")
    p.add_argument("--dial", help="number A dials (default: B's user)")
    p.add_argument("--tone-a", type=int, default=440)
    p.add_argument("--tone-b", type=int, default=1000)
    p.add_argument("--talk", type=float, default=3.0)
    p.add_argument("--dtmf", default="")
    p.add_argument("--hangup", default="caller", choices=["caller", "callee"])
    p.add_argument("--answer-code", type=int, default=200)
    p.add_argument("--answer-delay", type=float, default=0.5)
    p.add_argument("--cancel-after", type=float)
    p.add_argument("--setup-timeout", type=float, default=10.0)
    p.add_argument("--expires", type=int, default=300)
    p.add_argument("--codec", help="PCMU or PCMA: the only codec enabled")
    p.add_argument("--workdir")
    p.add_argument("--pj-log", type=int, default=1)
    args = p.parse_args()
    # pjlib logs to stdout: keep stdout for the one JSON line, send everything else to stderr.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    runner = Runner(args)
    result = {}
    try:
        result = {"register": scenario_register, "call": scenario_call}[args.scenario](runner, args)
    except Exception:  # noqa: BLE001 - reported in the JSON
        # Formatting (not keeping) the traceback: its frames would keep Calls alive past
        # libDestroy.
        text = traceback.format_exc()
        log(text)
        ERRORS.append(f"scenario failed: {text.strip().splitlines()[-1]}")
    gc.collect()
    runner.close()
    result["errors"] = ERRORS
    json_out.write(json.dumps(result) + "\n")
    json_out.flush()

if __name__ == "__main__":
    main()
