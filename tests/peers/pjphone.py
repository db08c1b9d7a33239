#!/usr/bin/env python3
"""Real SIP phones for ctiswitch tests, built on PJSIP's pjsua2 (PyPI pjsua2-python).

One process, one pjsua2 Endpoint, any number of accounts (phones). Each scenario prints one
JSON object on stdout that the Rust test reads and judges. Every loop is bounded in time.

Scenarios:
  register  --phone USER:PASS            register once, report the final status code
  call      --caller USER:PASS --callee USER:PASS
            A calls B through the switch; B answers; each plays its own tone and records
            what it hears; A sends DTMF; one side hangs up. Reports states, DTMF digits
            received by B, and the tone power found in each recording.
"""
import argparse
import gc
import json
import math
import os
import struct
import sys
import tempfile
import time
import wave

import pjsua2 as pj

LOOP_STEP_MS = 20


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def write_tone(path, freq, seconds=2.0, rate=8000, amplitude=0.3):
    """A 16-bit mono sine WAV; the player loops it."""
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
    """Power of one frequency (normalised per sample)."""
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
    """For each frequency: its share of the signal's power, in the louder half-second blocks."""
    rate, samples = read_wav(path)
    total = sum(float(x) * x for x in samples) / max(len(samples), 1)
    result = {"seconds": len(samples) / rate, "rms": math.sqrt(total)}
    for f in freqs:
        # Goertzel power of a pure sine of amplitude A is A^2/4; total power is A^2/2.
        p = goertzel_power(samples, rate, f)
        result[str(f)] = (2.0 * p / total) if total > 0 else 0.0
    return result


class Phone(pj.Account):
    def __init__(self, runner, user):
        super().__init__()
        self.runner = runner
        self.user = user
        self.reg_codes = []
        self.calls = []

    def onRegState(self, prm):
        self.reg_codes.append(prm.code)
        log(f"{self.user}: reg state {prm.code} {prm.reason}")

    def onIncomingCall(self, prm):
        call = PhoneCall(self, prm.callId)
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
        self.confirmed_at = None
        self.disconnected_at = None
        self.dtmf = ""
        self.answer_at = None
        self.player = None
        self.recorder = None
        self.record_path = None

    def onCallState(self, prm):
        ci = self.getInfo()
        self.states.append(ci.stateText)
        self.last_code = ci.lastStatusCode
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.confirmed_at is None:
            self.confirmed_at = time.time()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED and self.disconnected_at is None:
            self.disconnected_at = time.time()
        log(f"{self.account.user}: call {ci.stateText} {ci.lastStatusCode}")

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
                    self.record_path = os.path.join(runner.workdir, f"heard-by-{self.account.user}.wav")
                    self.recorder.createRecorder(self.record_path)
                self.player.startTransmit(media)
                media.startTransmit(self.recorder)

    def onDtmfDigit(self, prm):
        self.dtmf += prm.digit
        log(f"{self.account.user}: DTMF {prm.digit}")

    def summary(self):
        return {
            "states": self.states,
            "last_code": self.last_code,
            "connected": self.confirmed_at is not None,
            "talk_seconds": (self.disconnected_at - self.confirmed_at)
            if self.confirmed_at and self.disconnected_at
            else None,
            "dtmf": self.dtmf,
            "record": self.record_path,
        }


class Runner:
    def __init__(self, args):
        self.args = args
        self.workdir = args.workdir or tempfile.mkdtemp(prefix="pjphone-")
        self.answer_code = args.answer_code
        self.answer_delay = args.answer_delay
        self.tones = {}
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "ctiswitch-test-pjsua2"
        cfg.logConfig.level = args.pj_log
        cfg.logConfig.consoleLevel = args.pj_log
        cfg.medConfig.noVad = True
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
            for c in self.ep.codecEnum2():
                prio = 255 if c.codecId.lower().startswith(args.codec.lower() + "/") else 0
                self.ep.codecSetPriority(c.codecId, prio)
        self.phones = []

    def tone_file(self, user):
        freq = self.tones.get(user, 0)
        path = os.path.join(self.workdir, f"tone-{user}-{freq}.wav")
        if not os.path.exists(path):
            write_tone(path, freq if freq else 1, amplitude=0.3 if freq else 0.0)
        return path

    def phone(self, cred, tone=0):
        user, _, password = cred.partition(":")
        acfg = pj.AccountConfig()
        switch = self.args.switch
        suffix = ";transport=tcp" if self.args.transport == "tcp" else ""
        acfg.idUri = f"sip:{user}@{switch}"
        acfg.regConfig.registrarUri = f"sip:{switch}{suffix}"
        acfg.regConfig.timeoutSec = self.args.expires
        acfg.regConfig.retryIntervalSec = 0
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        acfg.natConfig.iceEnabled = False
        phone = Phone(self, user)
        phone.create(acfg)
        self.tones[user] = tone
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
                    except pj.Error as e:
                        log(f"answer failed: {e.info()}")

    def wait_registered(self, phone, seconds=10):
        self.pump(seconds, lambda: any(c // 100 != 1 for c in phone.reg_codes))
        return phone.reg_codes[-1] if phone.reg_codes else None

    def close(self):
        for phone in self.phones:
            for call in phone.calls:
                call.player = None
                call.recorder = None
            phone.calls = []
        self.phones = []
        gc.collect()
        self.ep.libDestroy()


def scenario_register(runner, args):
    phone = runner.phone(args.phone)
    code = runner.wait_registered(phone)
    result = {"codes": phone.reg_codes, "final": code}
    if args.unregister and code == 200:
        phone.setRegistration(False)
        runner.pump(5, lambda: len(phone.reg_codes) >= 2)
        result["unregister_codes"] = phone.reg_codes[1:]
    return result


def scenario_call(runner, args):
    a = runner.phone(args.caller, tone=args.tone_a)
    b = runner.phone(args.callee, tone=args.tone_b)
    result = {"register": {"a": runner.wait_registered(a), "b": runner.wait_registered(b)}}
    callee_user = args.dial or args.callee.partition(":")[0]
    call = PhoneCall(a)
    a.calls.append(call)
    op = pj.CallOpParam(True)
    call.makeCall(f"sip:{callee_user}@{args.switch}", op)
    runner.pump(args.setup_timeout, lambda: call.confirmed_at is not None or call.disconnected_at is not None)
    if call.confirmed_at is not None:
        runner.pump(args.talk)
        if args.dtmf:
            call.dialDtmf(args.dtmf)
            runner.pump(0.3 * len(args.dtmf) + 1.0)
        if args.hangup == "callee" and b.calls:
            b.calls[0].hangup(pj.CallOpParam())
        else:
            call.hangup(pj.CallOpParam())
    elif args.cancel_after is not None:
        call.hangup(pj.CallOpParam())
    runner.pump(5, lambda: call.disconnected_at is not None and all(c.disconnected_at for c in b.calls))
    result["caller"] = call.summary()
    result["callee"] = b.calls[0].summary() if b.calls else None
    freqs = [args.tone_a, args.tone_b]
    # Drop players/recorders so the WAV files are complete before analysis.
    for c in [call] + b.calls:
        c.player = None
        c.recorder = None
    gc.collect()
    audio = {}
    for who, c in (("caller", call), ("callee", b.calls[0] if b.calls else None)):
        if c is not None and c.record_path and os.path.exists(c.record_path):
            audio[who] = analyse(c.record_path, freqs)
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
    runner = Runner(args)
    try:
        result = {"register": scenario_register, "call": scenario_call}[args.scenario](runner, args)
    finally:
        runner.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
