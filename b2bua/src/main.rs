//! `b2bua`: a small UDP SIP back-to-back user agent standing in for Asterisk in the test
//! topology. Each INVITE from the load balancer (A-leg) becomes a new call (B-leg, new
//! Call-ID, optional `X-CID: <A-leg Call-ID>`) towards a fixed next hop; provisional and final
//! responses, ACK and BYE are bridged between the legs. OPTIONS get 200 (503 while drained).
//! Every leg pair is written to a JSON-lines log: a `start` line when the B-leg is created and
//! an `end` line when the pair is over, so a crash still leaves the A/B mapping behind.

mod sip;

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sip::Msg;

const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMER_B: Duration = Duration::from_secs(32);
/// How long a finished call is kept to absorb retransmissions.
const LINGER: Duration = Duration::from_secs(5);

const USAGE: &str = "usage: b2bua --listen IP:PORT --next-hop IP:PORT [--xcid] [--legs-log FILE] [--node NAME]
             [--max-calls N] [--call-timeout SECS] [--run-for SECS] [--drain-file FILE] [--stop-file FILE]
  --xcid           add `X-CID: <A-leg Call-ID>` to B-leg INVITEs
  --legs-log FILE  append one JSON line per leg pair event (start, end)
  --node NAME      name written in the legs log (default: b2bua)
  --max-calls N    concurrent calls before new INVITEs get 503 (default 1000)
  --call-timeout S hang up calls older than S seconds (default 300)
  --run-for S      exit after S seconds, logging unfinished calls (default: run until killed)
  --drain-file F   while F exists: OPTIONS and new INVITEs are answered 503
  --stop-file F    exit (logging unfinished calls) once F exists";

struct Config {
    listen: SocketAddr,
    next_hop: SocketAddr,
    xcid: bool,
    legs_log: Option<PathBuf>,
    node: String,
    max_calls: usize,
    call_timeout: Duration,
    run_for: Option<Duration>,
    drain_file: Option<PathBuf>,
    stop_file: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut cfg = Config {
        listen: "0.0.0.0:0".parse().map_err(|_| "internal")?,
        next_hop: "0.0.0.0:0".parse().map_err(|_| "internal")?,
        xcid: false,
        legs_log: None,
        node: "b2bua".into(),
        max_calls: 1000,
        call_timeout: Duration::from_secs(300),
        run_for: None,
        drain_file: None,
        stop_file: None,
    };
    let (mut have_listen, mut have_hop) = (false, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => {
                cfg.listen = val()?.parse().map_err(|e| format!("--listen: {e}"))?;
                have_listen = true;
            }
            "--next-hop" => {
                cfg.next_hop = val()?.parse().map_err(|e| format!("--next-hop: {e}"))?;
                have_hop = true;
            }
            "--xcid" => cfg.xcid = true,
            "--legs-log" => cfg.legs_log = Some(val()?.into()),
            "--node" => cfg.node = val()?,
            "--max-calls" => cfg.max_calls = val()?.parse().map_err(|e| format!("--max-calls: {e}"))?,
            "--call-timeout" => {
                cfg.call_timeout = Duration::from_secs_f64(val()?.parse().map_err(|e| format!("--call-timeout: {e}"))?)
            }
            "--run-for" => {
                cfg.run_for = Some(Duration::from_secs_f64(val()?.parse().map_err(|e| format!("--run-for: {e}"))?))
            }
            "--drain-file" => cfg.drain_file = Some(val()?.into()),
            "--stop-file" => cfg.stop_file = Some(val()?.into()),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !have_listen || !have_hop {
        return Err("--listen and --next-hop are required".into());
    }
    if cfg.listen.ip().is_unspecified() {
        return Err("--listen needs a concrete address (it is written into Via and Contact)".into());
    }
    Ok(cfg)
}

fn epoch() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_time(t: Option<f64>) -> String {
    t.map_or_else(|| "null".into(), |t| format!("{t:.3}"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// B-leg INVITE sent, no final response yet.
    Setup,
    /// 200 sent on the A-leg, waiting for its ACK.
    Answered,
    Confirmed,
    /// A BYE was sent on one leg; waiting for its 200.
    Terminating,
    Done,
}

/// A request we sent and retransmit until a response arrives (or give up).
struct Pending {
    branch: String,
    data: Vec<u8>,
    dest: SocketAddr,
    next: Instant,
    interval: Duration,
    deadline: Instant,
    /// INVITE transactions stop retransmitting at the first provisional response.
    provisional: bool,
}

struct Call {
    a_invite: Msg,
    a_src: SocketAddr,
    a_to_tag: String,
    /// A-leg route set (Record-Route as received) and remote target, for BYE towards the A side.
    a_route: Vec<String>,
    a_target: String,
    a_cseq: u32,
    a_final: Option<(u16, String)>,
    a_retx: Option<(Instant, Duration, Instant)>,
    b_call_id: String,
    b_from: String,
    b_to: String,
    b_target: Option<String>,
    b_cseq: u32,
    b_invite_branch: String,
    b_sdp: Vec<u8>,
    state: State,
    pending: Vec<Pending>,
    started: Instant,
    t_invite: f64,
    t_answer: Option<f64>,
    t_ack: Option<f64>,
    t_end: Option<f64>,
    end: String,
    done_at: Option<Instant>,
}

struct B2bua {
    cfg: Config,
    sock: UdpSocket,
    calls: HashMap<u64, Call>,
    by_a: HashMap<String, u64>,
    by_b: HashMap<String, u64>,
    next_id: u64,
    rng: RandomState,
    log: Option<File>,
}

impl B2bua {
    fn rand_hex(&mut self, n: usize) -> String {
        let mut out = String::new();
        while out.len() < n {
            let mut h = self.rng.build_hasher();
            h.write_u64(self.next_id);
            h.write_usize(out.len());
            h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
            out.push_str(&format!("{:016x}", h.finish()));
        }
        out.truncate(n);
        out
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK-{}", self.rand_hex(16))
    }

    fn draining(&self) -> bool {
        self.cfg.drain_file.as_ref().is_some_and(|f| f.exists())
    }

    fn send(&self, msg: &Msg, dest: SocketAddr) {
        if let Err(e) = self.sock.send_to(&msg.to_bytes(), dest) {
            eprintln!("b2bua: send to {dest}: {e}");
        }
    }

    /// Reply to a request along its top Via (falling back to the packet's source).
    fn reply(&self, req: &Msg, src: SocketAddr, code: u16, reason: &str, to_tag: Option<&str>) {
        let dest = req.header("Via").and_then(sip::via_dest).unwrap_or(src);
        self.send(&sip::response(req, code, reason, to_tag, &[], b""), dest);
    }

    fn log_line(&mut self, line: String) {
        if let Some(f) = self.log.as_mut() {
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
    }

    fn log_event(&mut self, id: u64, event: &str) {
        let Some(c) = self.calls.get(&id) else { return };
        let a = &c.a_invite;
        let line = format!(
            "{{\"event\":{},\"node\":{},\"a_call_id\":{},\"b_call_id\":{},\"a_from\":{},\"a_to\":{},\"lb_addr\":{},\
             \"xcid\":{},\"t_invite\":{},\"t_answer\":{},\"t_ack\":{},\"t_end\":{},\"end\":{}}}",
            json_str(event),
            json_str(&self.cfg.node),
            json_str(a.call_id()),
            json_str(&c.b_call_id),
            json_str(sip::uri_user(sip::uri_of(a.header("From").unwrap_or("")))),
            json_str(sip::uri_user(a.ruri())),
            json_str(&c.a_src.ip().to_string()),
            self.cfg.xcid,
            json_time(Some(c.t_invite)),
            json_time(c.t_answer),
            json_time(c.t_ack),
            json_time(c.t_end),
            if c.end.is_empty() { "null".into() } else { json_str(&c.end) },
        );
        self.log_line(line);
    }

    fn finish(&mut self, id: u64, reason: &str) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        if c.state == State::Done {
            return;
        }
        c.state = State::Done;
        c.end = reason.to_string();
        c.t_end = Some(epoch());
        c.done_at = Some(Instant::now());
        c.pending.retain(|p| p.data.starts_with(b"BYE"));
        c.a_retx = None;
        self.log_event(id, "end");
    }

    fn handle(&mut self, data: &[u8], src: SocketAddr) {
        let Some(msg) = Msg::parse(data) else { return };
        if msg.is_request() {
            self.request(msg, src);
        } else {
            self.response(msg);
        }
    }

    fn request(&mut self, msg: Msg, src: SocketAddr) {
        let cid = msg.call_id().to_string();
        if let Some(&id) = self.by_a.get(&cid) {
            return self.a_request(id, msg, src);
        }
        if let Some(&id) = self.by_b.get(&cid) {
            return self.b_request(id, msg, src);
        }
        match msg.method() {
            "OPTIONS" => {
                let (code, reason) = if self.draining() { (503, "Service Unavailable") } else { (200, "OK") };
                let tag = self.rand_hex(8);
                self.reply(&msg, src, code, reason, Some(&tag));
            }
            "INVITE" if msg.header("To").and_then(sip::tag).is_none() => self.new_call(msg, src),
            "ACK" => {}
            _ => self.reply(&msg, src, 481, "Call/Transaction Does Not Exist", None),
        }
    }

    fn new_call(&mut self, a: Msg, src: SocketAddr) {
        let live = self.calls.values().filter(|c| c.state != State::Done).count();
        if self.draining() || live >= self.cfg.max_calls {
            let tag = self.rand_hex(8);
            return self.reply(&a, src, 503, "Service Unavailable", Some(&tag));
        }
        self.next_id += 1;
        let id = self.next_id;
        let h = self.rand_hex(32);
        let b_call_id = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
        let (from_tag, a_to_tag, branch) = (self.rand_hex(10), self.rand_hex(10), self.branch());
        let xcid = self.cfg.xcid.then(|| a.call_id());
        let leg = sip::NewLeg {
            call_id: &b_call_id,
            from_tag: &from_tag,
            branch: &branch,
            local: self.cfg.listen,
            next_hop: self.cfg.next_hop,
            xcid,
        };
        let invite = sip::b_leg_invite(&a, &leg);
        self.reply(&a, src, 100, "Trying", None);
        let now = Instant::now();
        let pending = Pending {
            branch: branch.clone(),
            data: invite.to_bytes(),
            dest: self.cfg.next_hop,
            next: now + T1,
            interval: T1,
            deadline: now + TIMER_B,
            provisional: false,
        };
        self.send(&invite, self.cfg.next_hop);
        let call = Call {
            a_route: a.headers_all("Record-Route").iter().map(|s| s.to_string()).collect(),
            a_target: a.header("Contact").map(sip::uri_of).unwrap_or("").to_string(),
            a_cseq: 0,
            a_src: src,
            a_to_tag,
            a_final: None,
            a_retx: None,
            b_from: invite.header("From").unwrap_or("").to_string(),
            b_to: invite.header("To").unwrap_or("").to_string(),
            b_call_id: b_call_id.clone(),
            b_target: None,
            b_cseq: 1,
            b_invite_branch: branch,
            b_sdp: Vec::new(),
            state: State::Setup,
            pending: vec![pending],
            started: now,
            t_invite: epoch(),
            t_answer: None,
            t_ack: None,
            t_end: None,
            end: String::new(),
            done_at: None,
            a_invite: a,
        };
        self.by_a.insert(call.a_invite.call_id().to_string(), id);
        self.by_b.insert(b_call_id, id);
        self.calls.insert(id, call);
        self.log_event(id, "start");
    }

    /// The response we owe the A-leg INVITE, built against its latest copy (Vias may have
    /// changed if the INVITE was re-sent through another load balancer).
    fn a_response(&self, id: u64, code: u16, reason: &str) {
        let Some(c) = self.calls.get(&id) else { return };
        let mut extra: Vec<(&str, String)> = Vec::new();
        if (101..300).contains(&code) {
            extra.extend(c.a_route.iter().map(|r| ("Record-Route", r.clone())));
            let user = sip::uri_user(c.a_invite.ruri());
            extra.push(("Contact", format!("<sip:{user}@{}>", self.cfg.listen)));
        }
        let body: &[u8] = if code == 200 { &c.b_sdp } else { b"" };
        if !body.is_empty() {
            extra.push(("Content-Type", "application/sdp".into()));
        }
        let r = sip::response(&c.a_invite, code, reason, Some(&c.a_to_tag), &extra, body);
        let dest = c.a_invite.header("Via").and_then(sip::via_dest).unwrap_or(c.a_src);
        self.send(&r, dest);
    }

    fn a_request(&mut self, id: u64, msg: Msg, src: SocketAddr) {
        let Some(c) = self.calls.get_mut(&id) else { return };
        match msg.method() {
            "INVITE" if msg.cseq().0 == c.a_invite.cseq().0 && c.a_invite.header("To").and_then(sip::tag).is_none() => {
                // Retransmission, possibly through the other LB: answer along the new path.
                c.a_src = src;
                c.a_invite = msg;
                match c.a_final.clone() {
                    Some((code, reason)) => self.a_response(id, code, &reason),
                    None => self.a_response(id, 100, "Trying"),
                }
            }
            "ACK" => {
                if c.t_ack.is_none() && c.a_final.as_ref().is_some_and(|(code, _)| *code == 200) {
                    c.t_ack = Some(epoch());
                    c.a_retx = None;
                    if c.state == State::Answered {
                        c.state = State::Confirmed;
                    }
                }
            }
            "BYE" => {
                let tag = c.a_to_tag.clone();
                self.reply(&msg, src, 200, "OK", Some(&tag));
                if self.calls.get(&id).is_some_and(|c| matches!(c.state, State::Answered | State::Confirmed)) {
                    self.send_bye_b(id);
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.state = State::Terminating;
                        c.end = "bye_from_a".into();
                    }
                } else if self.calls.get(&id).is_some_and(|c| c.state != State::Done) {
                    self.finish(id, "bye_from_a");
                }
            }
            "CANCEL" => {
                let setup = c.state == State::Setup;
                if setup {
                    c.a_final = Some((487, "Request Terminated".into()));
                }
                self.reply(&msg, src, 200, "OK", None);
                if setup {
                    self.a_response(id, 487, "Request Terminated");
                    self.send_cancel_b(id);
                    self.finish(id, "cancelled");
                }
            }
            _ => {
                let tag = c.a_to_tag.clone();
                self.reply(&msg, src, 501, "Not Implemented", Some(&tag));
            }
        }
    }

    fn b_request(&mut self, id: u64, msg: Msg, src: SocketAddr) {
        match msg.method() {
            "BYE" => {
                self.reply(&msg, src, 200, "OK", None);
                if self.calls.get(&id).is_some_and(|c| matches!(c.state, State::Answered | State::Confirmed)) {
                    self.send_bye_a(id);
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.state = State::Terminating;
                        c.end = "bye_from_b".into();
                    }
                }
            }
            "ACK" => {}
            _ => self.reply(&msg, src, 501, "Not Implemented", None),
        }
    }

    fn push_pending(&mut self, id: u64, branch: String, msg: &Msg, dest: SocketAddr) {
        self.send(msg, dest);
        let now = Instant::now();
        if let Some(c) = self.calls.get_mut(&id) {
            c.pending.push(Pending {
                branch,
                data: msg.to_bytes(),
                dest,
                next: now + T1,
                interval: T1,
                deadline: now + TIMER_B,
                provisional: false,
            });
        }
    }

    fn send_bye_b(&mut self, id: u64) {
        let branch = self.branch();
        let local = self.cfg.listen;
        let Some(c) = self.calls.get_mut(&id) else { return };
        c.b_cseq += 1;
        let target = c.b_target.clone().unwrap_or_else(|| sip::uri_of(&c.b_to).to_string());
        let bye = sip::in_dialog(&sip::InDialog {
            method: "BYE",
            target: &target,
            route: &[],
            from: &c.b_from,
            to: &c.b_to,
            call_id: &c.b_call_id,
            cseq: c.b_cseq,
            branch: &branch,
            local,
        });
        let dest = sip::uri_addr(&target).unwrap_or(self.cfg.next_hop);
        self.push_pending(id, branch, &bye, dest);
    }

    fn send_cancel_b(&mut self, id: u64) {
        let Some(c) = self.calls.get(&id) else { return };
        let cancel = sip::in_dialog(&sip::InDialog {
            method: "CANCEL",
            target: &format!("sip:{}@{}", sip::uri_user(c.a_invite.ruri()), self.cfg.next_hop),
            route: &[],
            from: &c.b_from,
            to: &c.b_to,
            call_id: &c.b_call_id,
            cseq: 1,
            branch: &c.b_invite_branch,
            local: self.cfg.listen,
        });
        self.send(&cancel, self.cfg.next_hop);
    }

    fn send_bye_a(&mut self, id: u64) {
        let branch = self.branch();
        let local = self.cfg.listen;
        let Some(c) = self.calls.get_mut(&id) else { return };
        c.a_cseq += 1;
        let a = &c.a_invite;
        let from = format!("{};tag={}", a.header("To").unwrap_or(""), c.a_to_tag);
        // As UAS, the route set is the Record-Route list in received order.
        let bye = sip::in_dialog(&sip::InDialog {
            method: "BYE",
            target: &c.a_target,
            route: &c.a_route,
            from: &from,
            to: a.header("From").unwrap_or(""),
            call_id: a.call_id(),
            cseq: c.a_cseq,
            branch: &branch,
            local,
        });
        let dest = sip::next_hop_of(&c.a_route, &c.a_target).unwrap_or(c.a_src);
        self.push_pending(id, branch, &bye, dest);
    }

    fn response(&mut self, msg: Msg) {
        let cid = msg.call_id();
        let branch = msg.header("Via").and_then(|v| sip::param(v, "branch")).unwrap_or("").to_string();
        let Some(&id) = self.by_b.get(cid).or_else(|| self.by_a.get(cid)) else { return };
        let code = msg.status();
        let is_invite = msg.cseq().1.eq_ignore_ascii_case("INVITE");
        let Some(c) = self.calls.get_mut(&id) else { return };
        // Stop retransmitting the request this answers.
        if code >= 200 {
            c.pending.retain(|p| p.branch != branch);
        } else if let Some(p) = c.pending.iter_mut().find(|p| p.branch == branch) {
            p.provisional = true;
        }
        if !is_invite || cid != c.b_call_id {
            // Response to one of our BYEs: the pair is over once it is answered.
            if code >= 200 && c.state == State::Terminating && c.pending.iter().all(|p| !p.data.starts_with(b"BYE")) {
                let end = c.end.clone();
                self.finish(id, &end);
            }
            return;
        }
        match code {
            180 | 183 if c.state == State::Setup && c.a_final.is_none() => {
                self.a_response(id, code, if code == 180 { "Ringing" } else { "Session Progress" })
            }
            200..=299 => {
                let to = msg.header("To").unwrap_or("").to_string();
                c.b_to = to;
                c.b_target = msg.header("Contact").map(|v| sip::uri_of(v).to_string());
                let target = c.b_target.clone().unwrap_or_else(|| sip::uri_of(&c.b_to).to_string());
                let ack = sip::in_dialog(&sip::InDialog {
                    method: "ACK",
                    target: &target,
                    route: &[],
                    from: &c.b_from,
                    to: &c.b_to,
                    call_id: &c.b_call_id,
                    cseq: 1,
                    branch: &format!("{}-ack", c.b_invite_branch),
                    local: self.cfg.listen,
                });
                let dest = sip::uri_addr(&target).unwrap_or(self.cfg.next_hop);
                if c.a_final.is_none() && c.state == State::Setup {
                    c.b_sdp = sip::rewrite_sdp(&msg.body, &self.cfg.listen.ip().to_string());
                    c.a_final = Some((200, "OK".into()));
                    c.state = State::Answered;
                    c.t_answer = Some(epoch());
                    let now = Instant::now();
                    c.a_retx = Some((now + T1, T1, now + TIMER_B));
                    self.a_response(id, 200, "OK");
                }
                self.send(&ack, dest);
            }
            300..=699 => {
                // Hop-by-hop ACK for the failed B-leg, same branch as its INVITE.
                let ack = sip::in_dialog(&sip::InDialog {
                    method: "ACK",
                    target: &format!("sip:{}@{}", sip::uri_user(c.a_invite.ruri()), self.cfg.next_hop),
                    route: &[],
                    from: &c.b_from,
                    to: msg.header("To").unwrap_or(""),
                    call_id: &c.b_call_id,
                    cseq: 1,
                    branch: &c.b_invite_branch,
                    local: self.cfg.listen,
                });
                let first = c.state == State::Setup && c.a_final.is_none();
                let reason = msg.start.splitn(3, ' ').nth(2).unwrap_or("Failed").to_string();
                if first {
                    c.a_final = Some((code, reason.clone()));
                }
                self.send(&ack, self.cfg.next_hop);
                if first {
                    self.a_response(id, code, &reason);
                    self.finish(id, &format!("failed_{code}"));
                }
            }
            _ => {}
        }
    }

    /// Retransmissions, timeouts and clean-up.
    fn timers(&mut self) {
        let now = Instant::now();
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            let mut resend: Vec<(Vec<u8>, SocketAddr)> = Vec::new();
            let mut expired: Vec<Vec<u8>> = Vec::new();
            let mut resend_200 = false;
            let mut ack_timeout = false;
            let Some(c) = self.calls.get_mut(&id) else { continue };
            if c.done_at.is_some_and(|d| now.duration_since(d) > LINGER) {
                let c = self.calls.remove(&id);
                if let Some(c) = c {
                    self.by_a.remove(c.a_invite.call_id());
                    self.by_b.remove(&c.b_call_id);
                }
                continue;
            }
            c.pending.retain_mut(|p| {
                if now >= p.deadline {
                    expired.push(p.data.clone());
                    return false;
                }
                if !p.provisional && now >= p.next {
                    resend.push((p.data.clone(), p.dest));
                    p.interval = (p.interval * 2).min(T2);
                    p.next = now + p.interval;
                }
                true
            });
            if let Some((next, interval, deadline)) = c.a_retx {
                if now >= deadline {
                    c.a_retx = None;
                    ack_timeout = true;
                } else if now >= next {
                    let interval = (interval * 2).min(T2);
                    c.a_retx = Some((now + interval, interval, deadline));
                    resend_200 = true;
                }
            }
            let too_old = c.state != State::Done && now.duration_since(c.started) > self.cfg.call_timeout;
            let state = c.state;
            for (data, dest) in resend {
                let _ = self.sock.send_to(&data, dest);
            }
            if resend_200 {
                self.a_response(id, 200, "OK");
            }
            for data in expired {
                if data.starts_with(b"INVITE") && state == State::Setup {
                    if let Some(c) = self.calls.get_mut(&id) {
                        c.a_final = Some((408, "Request Timeout".into()));
                    }
                    self.a_response(id, 408, "Request Timeout");
                    self.finish(id, "failed_b_timeout");
                } else if data.starts_with(b"BYE") && state == State::Terminating {
                    let end = self.calls.get(&id).map(|c| format!("{}_unanswered", c.end)).unwrap_or_default();
                    self.finish(id, &end);
                }
            }
            if ack_timeout || too_old {
                if state == State::Answered || state == State::Confirmed {
                    self.send_bye_b(id);
                    self.send_bye_a(id);
                }
                self.finish(id, if ack_timeout { "no_ack" } else { "call_timeout" });
            }
        }
    }

    fn run(&mut self) -> std::io::Result<()> {
        let started = Instant::now();
        let mut buf = vec![0u8; 65536];
        self.sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        loop {
            if self.cfg.run_for.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
            if self.cfg.stop_file.as_ref().is_some_and(|f| f.exists()) {
                break;
            }
            match self.sock.recv_from(&mut buf) {
                Ok((n, src)) => self.handle(&buf[..n], src),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
            self.timers();
        }
        let open: Vec<u64> = self.calls.iter().filter(|(_, c)| c.state != State::Done).map(|(id, _)| *id).collect();
        for id in open {
            self.finish(id, "unfinished_at_exit");
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("b2bua: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let sock = match UdpSocket::bind(cfg.listen) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("b2bua: bind {}: {e}", cfg.listen);
            return ExitCode::FAILURE;
        }
    };
    let log = match &cfg.legs_log {
        Some(p) => match File::options().create(true).append(true).open(p) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("b2bua: {}: {e}", p.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    eprintln!("b2bua: {} listening on {} -> {} (xcid: {})", cfg.node, cfg.listen, cfg.next_hop, cfg.xcid);
    let mut b = B2bua {
        cfg,
        sock,
        calls: HashMap::new(),
        by_a: HashMap::new(),
        by_b: HashMap::new(),
        next_id: 0,
        rng: RandomState::new(),
        log,
    };
    match b.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("b2bua: {e}");
            ExitCode::FAILURE
        }
    }
}
