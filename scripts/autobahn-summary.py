# Summarise an Autobahn|Testsuite fuzzingclient report (index.json and the
# per-case JSON files beside it). Used by scripts/autobahn.sh; runs on Python
# 2.7 (the test suite's virtualenv) and on Python 3.
#
#   python autobahn-summary.py OUTDIR [--nonstrict]
#
# Prints one line per behaviour (OK, NON-STRICT, INFORMATIONAL, UNIMPLEMENTED,
# FAILED), the same for the closing behaviour, then every FAILED case (the
# case's behaviour or its closing behaviour) with its description, what
# Autobahn expected and what the server did, and every case whose closing
# behaviour is neither OK nor INFORMATIONAL nor NON-STRICT (WRONG CODE,
# UNCLEAN: listed, but they do not fail the run by themselves). With
# --nonstrict the NON-STRICT cases are listed the same way. Exit status: 0 when no case FAILED, 1 when
# some did, 2 when the report is missing or holds no case.
from __future__ import print_function

import io
import json
import os
import sys

if sys.version_info[0] == 2:
    # Descriptions hold non-ASCII text; Python 2 would encode it as ASCII
    # when stdout is a pipe.
    import codecs
    sys.stdout = codecs.getwriter("utf-8")(sys.stdout)

BEHAVIOURS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
CUT = 160


def case_key(case_id):
    out = []
    for part in case_id.split("."):
        try:
            out.append(int(part))
        except ValueError:
            out.append(0)
    return out


def short(value, cut=CUT):
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True)
    else:
        text = "%s" % (value,)
    text = text.replace("\n", "\\n")
    if len(text) > cut:
        text = text[:cut] + "... (%d chars)" % len(text)
    return text


def events(received, limit=8):
    # 'received' is a list of [kind, payload, ...] events (message, ping,
    # pong, timeout, ...); payloads can be megabytes, so each is cut.
    out = []
    for ev in received[:limit]:
        if isinstance(ev, list) and ev:
            parts = [ev[0]] + [short(x, 60) for x in ev[1:]]
            out.append("[" + ", ".join("%s" % p for p in parts) + "]")
        else:
            out.append(short(ev, 60))
    if len(received) > limit:
        out.append("... %d events in all" % len(received))
    return "[" + ", ".join(out) + "]" if out else "[] (nothing)"


def load(path):
    with io.open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def describe(outdir, case_id, entry, out):
    rep = {}
    if entry.get("reportfile"):
        path = os.path.join(outdir, entry["reportfile"])
        if os.path.exists(path):
            rep = load(path)
    beh, close = entry.get("behavior"), entry.get("behaviorClose")
    if "FAILED" in (beh, close):
        label = "FAILED"
    elif close not in ("OK", "INFORMATIONAL", "NON-STRICT"):
        label = "CLOSE-%s" % ("%s" % close).replace(" ", "-")
    elif "NON-STRICT" in (beh, close):
        label = "NON-STRICT"
    else:
        label = beh
    out.append("%s %s  [behaviour %s, close %s, remote close code %s, %s ms]" % (
        label, case_id, entry.get("behavior"),
        entry.get("behaviorClose"), entry.get("remoteCloseCode"),
        entry.get("duration")))
    if not rep:
        out.append("    (no per-case report file)")
        return
    out.append("    description: %s" % short(rep.get("description", ""), 400))
    out.append("    expectation: %s" % short(rep.get("expectation", ""), 400))
    out.append("    expected:    %s" % short(rep.get("expected", {}), 300))
    out.append("    observed:    %s" % events(rep.get("received", [])))
    out.append("    result:      %s" % short(rep.get("result", ""), 300))
    out.append("    expected close: %s" % short(rep.get("expectedClose", {}), 300))
    out.append("    observed close: remote code %s reason %s; clean %s%s; closed by %s; dropped by %s" % (
        rep.get("remoteCloseCode"), short(rep.get("remoteCloseReason"), 80),
        rep.get("wasClean"),
        (" (%s)" % rep.get("wasNotCleanReason")) if rep.get("wasNotCleanReason") else "",
        "autobahn" if rep.get("closedByMe") else "server",
        "autobahn" if rep.get("droppedByMe") else "server"))
    out.append("    close result: %s" % short(rep.get("resultClose", ""), 300))
    out.append("    report: %s" % os.path.join(outdir, entry.get("reportfile", "")))


def main(argv):
    if len(argv) < 2:
        print("usage: autobahn-summary.py OUTDIR [--nonstrict]", file=sys.stderr)
        return 2
    outdir = argv[1]
    nonstrict = "--nonstrict" in argv[2:]
    index_path = os.path.join(outdir, "index.json")
    if not os.path.exists(index_path):
        print("autobahn: no report at %s" % index_path, file=sys.stderr)
        return 2
    index = load(index_path)
    if not index:
        print("autobahn: %s names no agent" % index_path, file=sys.stderr)
        return 2
    status = 0
    for agent in sorted(index):
        cases = index[agent]
        ids = sorted(cases, key=case_key)
        if not ids:
            print("autobahn: no case ran against %s" % agent, file=sys.stderr)
            return 2
        counts = dict((b, 0) for b in BEHAVIOURS)
        closes = dict((b, 0) for b in BEHAVIOURS)
        for cid in ids:
            b = cases[cid].get("behavior")
            counts[b] = counts.get(b, 0) + 1
            c = cases[cid].get("behaviorClose")
            closes[c] = closes.get(c, 0) + 1
        total_ms = sum(int(cases[c].get("duration") or 0) for c in ids)
        print("Autobahn|Testsuite against %s: %d cases (%s .. %s), %.1f s in cases" % (
            agent, len(ids), ids[0], ids[-1], total_ms / 1000.0))
        for b in BEHAVIOURS + sorted(set(counts) - set(BEHAVIOURS)):
            print("  %-14s %4d" % (b, counts.get(b, 0)))
        print("  closing behaviour: " + ", ".join(
            "%s %d" % (b, closes[b]) for b in BEHAVIOURS + sorted(set(closes) - set(BEHAVIOURS))
            if closes.get(b)))
        failed = [c for c in ids
                  if cases[c].get("behavior") == "FAILED" or cases[c].get("behaviorClose") == "FAILED"]
        # A closing behaviour other than OK and INFORMATIONAL (WRONG CODE,
        # UNCLEAN, ...) is listed too, though only FAILED fails the run.
        listed = [c for c in ids if c in failed
                  or cases[c].get("behaviorClose") not in ("OK", "INFORMATIONAL", "NON-STRICT")
                  or (nonstrict and "NON-STRICT" in (cases[c].get("behavior"),
                                                     cases[c].get("behaviorClose")))]
        if listed:
            out = []
            for cid in listed:
                out.append("")
                describe(outdir, cid, cases[cid], out)
            print("\n".join(out))
        if failed:
            print("")
            print("FAILED: %d case(s): %s" % (len(failed), " ".join(failed)))
            status = 1
        else:
            print("no case FAILED")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
