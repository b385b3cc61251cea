#!/usr/bin/env python3
"""Ground truth of one scenario run: which Call-IDs form each call, which LB and backend
carried it, when the scenario's event (failover, crash, drain) happened, which calls were in
progress then, and what became of each call.

Sources (all written by run.sh into OUTDIR/logs): the ITSP sipp log (INVITE/ANSWERED/DONE per
A-leg Call-ID, epoch times), the b2bua legs logs (A/B Call-ID pairs, per backend), the script's
own events (kill, VIP move; in lb-failover-vrrp keepalived's notify_master adds the instant
each LB became VRRP master). Which LB carried a call is read from each LB's own capture
(tshark: the A-leg Call-ID seen on that LB's interface).

usage: truth.py SCENARIO OUTDIR > OUTDIR/truth.json
"""
import json
import os
import subprocess
import sys

scen, out = sys.argv[1], sys.argv[2]
logs = os.path.join(out, "logs")


def jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


events = jsonl(os.path.join(logs, "events.jsonl"))
ev = {e["event"]: e for e in events}
topo = ev["topology"]

calls = {}
order = []
with open(os.path.join(logs, "itsp-calls.log")) as f:
    for line in f:
        parts = line.split()
        if len(parts) < 3 or parts[0] not in ("INVITE", "ANSWERED", "DONE"):
            continue
        # sipp prints its variables as doubles: "[$s].[$us]" reads "1795321469.000000.40952.000000".
        sec, _, usec, _ = (parts[2].split(".") + ["0", "0", "0"])[:4]
        kind, cid, t = parts[0], parts[1], round(int(sec) + int(usec) / 1e6, 3)
        if kind == "INVITE":
            calls[cid] = {"a_call_id": cid, "call_number": int(parts[3]) if len(parts) > 3 else None,
                          "t_invite": t, "t_answered": None, "t_done": None}
            order.append(cid)
        elif cid in calls:
            calls[cid]["t_answered" if kind == "ANSWERED" else "t_done"] = t

legs = {}
for h in ("ast1", "ast2"):
    for rec in jsonl(os.path.join(logs, f"legs-{h}.jsonl")):
        leg = legs.setdefault(rec["b_call_id"], {})
        leg.update({k: v for k, v in rec.items() if v is not None})
        leg["backend"] = rec["node"]
        if rec["event"] == "start":
            leg.setdefault("end", None)


def lb_sightings(host):
    """A-leg Call-ID -> first/last time and message count on this LB's interface."""
    pcap = os.path.join(out, f"{host}.pcap")
    res = subprocess.run(["tshark", "-n", "-r", pcap, "-Y", "sip && !icmp", "-T", "fields", "-e", "frame.time_epoch",
                          "-e", "sip.Call-ID"], capture_output=True, text=True, timeout=60)
    seen = {}
    for line in res.stdout.splitlines():
        t, _, cid = line.partition("\t")
        if not cid:
            continue
        s = seen.setdefault(cid, {"first": float(t), "last": float(t), "messages": 0})
        s["last"] = float(t)
        s["messages"] += 1
    return seen


lbs = {h: lb_sightings(h) for h in ("lb1", "lb2")}


def itsp_invites():
    """A-leg Call-ID -> INVITEs the ITSP sent (more than one: retransmitted)."""
    res = subprocess.run(["tshark", "-n", "-r", os.path.join(out, "itsp.pcap"), "-Y",
                          f'sip.Method == "INVITE" && ip.src == {topo["hosts"]["itsp"]} && !icmp', "-T", "fields",
                          "-e", "sip.Call-ID"], capture_output=True, text=True, timeout=60)
    sent = {}
    for cid in res.stdout.split():
        sent[cid] = sent.get(cid, 0) + 1
    return sent


itsp_sent = itsp_invites()


def backends_tried():
    """A-leg Call-ID -> backends an LB sent its INVITE to (from the LBs' captures): a
    backend that was dead or draining has no B-leg in its legs log, but was tried."""
    name = {ip: h for h, ip in topo["hosts"].items()}
    tried = {}
    for lb in ("lb1", "lb2"):
        res = subprocess.run(["tshark", "-n", "-r", os.path.join(out, f"{lb}.pcap"), "-Y",
                              'sip.Method == "INVITE" && !icmp', "-T", "fields", "-e", "sip.Call-ID", "-e", "ip.dst"],
                             capture_output=True, text=True, timeout=60)
        for line in res.stdout.splitlines():
            cid, _, dst = line.partition("\t")
            if name.get(dst, "").startswith("ast"):
                tried.setdefault(cid, set()).add(name[dst])
    return tried


tried = backends_tried()

# The scenario's event window: from the moment something broke to the moment it was repaired.
t_break = None
event_out = None
if scen == "lb-failover":
    t_break = ev["lb_killed"]["t"]
    event_out = {"type": "lb_failover", "from": "lb1", "to": "lb2", "t_lb_killed": t_break,
                 "t_vip_moved": ev["vip_moved"]["t"], "t": ev["vip_moved"]["t"]}
elif scen == "lb-failover-vrrp":
    # keepalived on lb2 took the VIP by itself: the failover is when it became master
    # (its notify_master ran), null if it never did.
    t_break = ev["lb_killed"]["t"]
    took = [e["t"] for e in events if e["event"] == "vrrp_master" and e.get("host") == "lb2" and e["t"] >= t_break]
    t_master = min(took) if took else None
    event_out = {"type": "lb_failover", "from": "lb1", "to": "lb2", "by": "keepalived", "t_lb_killed": t_break,
                 "t_vip_moved": t_master, "t": t_master}
elif scen == "backend-crash":
    t_break = ev["backend_crashed"]["t"]
    event_out = {"type": "backend_crash", "host": "ast1", "t": t_break}
elif scen == "backend-drain":
    t_break = ev["backend_drained"]["t"]
    event_out = {"type": "backend_drain", "host": "ast1", "t": t_break}

result_calls = []
for cid in order:
    c = calls[cid]
    b_legs = sorted((dict(leg) for leg in legs.values() if leg.get("a_call_id") == cid),
                    key=lambda leg: leg.get("t_invite", 0))
    for leg in b_legs:
        for k in ("event", "a_call_id", "node", "xcid", "a_from", "a_to", "lb_addr"):
            leg.pop(k, None)
    first_leg = next((leg for leg in legs.values() if leg.get("a_call_id") == cid), {})
    c["caller"] = first_leg.get("a_from")
    c["callee"] = first_leg.get("a_to")
    c["xcid"] = scen != "plain-noxcid"
    c["b_legs"] = b_legs
    c["backends"] = sorted({leg["backend"] for leg in b_legs})
    c["backends_tried"] = sorted(tried.get(cid, set()) | set(c["backends"]))
    on = [(h, s[cid]) for h, s in lbs.items() if cid in s]
    c["lbs"] = [h for h, _ in sorted(on, key=lambda x: x[1]["first"])]
    c["lb_messages"] = {h: s["messages"] for h, s in on}
    c["invite_retransmissions"] = max(itsp_sent.get(cid, 0) - 1, 0)
    c["outcome"] = "completed" if c["t_done"] is not None else "failed"
    phase = "none"
    if t_break is not None:
        end = c["t_done"]
        if c["t_invite"] > t_break:
            phase = "after"
        elif end is not None and end < t_break:
            phase = "before"
        elif c["t_answered"] is not None and c["t_answered"] < t_break:
            phase = "established"
        else:
            phase = "setup"
    c["phase_at_event"] = phase
    if phase in ("none", "before"):
        impact = "none" if c["outcome"] == "completed" else "failed"
    elif c["outcome"] == "failed":
        impact = "dropped"
    elif len(c["backends_tried"]) > 1 or any(leg.get("end", "").startswith("failed") for leg in b_legs):
        impact = "rerouted"
    elif len(c["lbs"]) > 1:
        impact = "survived_via_other_lb"
    else:
        impact = "unaffected"
    c["impact"] = impact
    result_calls.append(c)

if event_out is not None:
    event_out["calls_in_progress"] = [c["a_call_id"] for c in result_calls
                                      if c["phase_at_event"] in ("setup", "established")]
    if not scen.startswith("lb-failover"):
        host = event_out["host"]
        event_out["calls_in_progress"] = [c["a_call_id"] for c in result_calls if c["a_call_id"]
                                          in event_out["calls_in_progress"] and host in c["backends_tried"]]

summary = {
    "calls": len(result_calls),
    "completed": sum(c["outcome"] == "completed" for c in result_calls),
    "failed": sum(c["outcome"] == "failed" for c in result_calls),
    "b_legs": sum(len(c["b_legs"]) for c in result_calls),
    "by_backend": {h: sum(h in c["backends"] for c in result_calls) for h in ("ast1", "ast2")},
    "by_lb": {h: sum(h in c["lbs"] for c in result_calls) for h in ("lb1", "lb2")},
    "impact": {},
}
for c in result_calls:
    summary["impact"][c["impact"]] = summary["impact"].get(c["impact"], 0) + 1

json.dump({
    "scenario": scen,
    "hosts": topo["hosts"],
    "vip": topo["vip"],
    "vip_owner_at_start": topo["vip_owner"],
    "t_start": ev["uac_start"]["t"],
    "t_end": ev["done"]["t"],
    "events": [event_out] if event_out else [],
    "summary": summary,
    "calls": result_calls,
}, sys.stdout, indent=1)
print()
