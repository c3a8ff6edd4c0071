"""``report.html``: one self-contained page (inline CSS, figures as base64 PNG, no script, no
external reference), so it opens offline and can be archived with the run."""

from __future__ import annotations

import html
from typing import Any

from . import plots
from .attacks import CHANCE_AUC_BAND

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#1d2329;
line-height:1.45;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}
h2{font-size:19px;border-bottom:2px solid #e3e7eb;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0;font-size:13px;width:100%}
th,td{border:1px solid #d5dbe1;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f2f5f7}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}
.high,.fail,.succeeds{background:#fde2e1;color:#9b1c1c}.warn,.partial{background:#fff4d6;color:#7a5200}
.pass,.chance{background:#def7e5;color:#1e6b36}.skipped,.none{background:#eceff1;color:#455a64}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}.grid img{width:100%;border:1px solid #e3e7eb}
.muted{color:#5f6b76;font-size:13px}code{background:#f2f5f7;padding:0 3px}
.box{border:1px solid #d5dbe1;border-radius:6px;padding:10px 14px;margin:10px 0;background:#fafbfc}
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _pill(word: str, css: str = "") -> str:
    return f'<span class="pill {_e(css or word)}">{_e(word)}</span>'


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return _e(x)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'


def _summary(r: dict) -> str:
    s = r["summary"]
    attacks = ", ".join(f"{_e(k)} {_pill(v)}" for k, v in s["attacks"].items()) or "not run"
    leak = _pill("high") + " per-client data in clear" if s["per_client_plaintext"] else _pill("pass") + " none found"
    return (f'<div class="box"><b>Per-client plaintext at the server:</b> {leak}<br>'
            f'<b>Flags:</b> {s["high_flags"]} high, {s["warnings"]} warnings &nbsp; '
            f'<b>Checks failed:</b> {_e(", ".join(s["checks_failed"]) or "none")}<br>'
            f"<b>Attacks (simulation of this backend):</b> {attacks}</div>")


def _inventory(r: dict) -> str:
    inv = r["inventory"]
    def protection(p: str) -> str:
        return _pill(p, {"plaintext": "high", "unclassified": "warn"}.get(p, "pass"))

    rows = [[_fmt(x["round"]), _e(x["stage"]), _e(x["kind"]), protection(x["protection"]),
             _e(", ".join(x["senders"])), _fmt(x["count"]), _fmt(x["bytes_total"]),
             _fmt(x["size_min"]) if x["size_min"] == x["size_max"] else f"{x['size_min']}..{x['size_max']}"]
            for x in inv["rows"]]
    out = _table(["round", "stage", "kind", "protection", "senders", "count", "bytes", "size each"], rows)
    items = "".join(f"<li>{_e(c)}</li>" for c in inv["computable"])
    out += f"<h3>What the server can compute</h3><ul>{items}</ul>"
    mk = [[f"<code>{_e(k)}</code>", _pill("high") if v == "per-client" else _e(v)]
          for k, v in inv["metric_keys"].items()]
    if mk:
        out += "<h3>Keys of server/metrics.jsonl</h3>" + _table(["key", "class"], mk)
    return out


def _flags(r: dict) -> str:
    if not r["flags"]:
        return "<p>No flag.</p>"
    return _table(["severity", "code", "where", "detail"],
                  [[_pill(f["severity"]), _e(f["code"]), _e(f["where"]), _e(f["detail"])] for f in r["flags"]])


def _checks(r: dict) -> str:
    rows = [[_e(c["name"]), _pill(c["status"]), _e(c["summary"])] for c in r["checks"]]
    out = _table(["check", "status", "result"], rows)
    bad = [(c["name"], d) for c in r["checks"] for d in c["details"]
           if d.get("ok") is False or "evidence" in d or "error" in d]
    if bad:
        out += "<h3>Findings</h3>" + _table(["check", "detail"], [[_e(n), _e(d)] for n, d in bad[:50]])
    return out


def _reads(r: dict) -> str:
    reads = r["server_reads"]
    if not reads:
        return "<p class='muted'>Payloads not archived: nothing to read back.</p>"
    readable = [x for x in reads if x["readable"]]
    if not readable:
        return (f"<p>{len(reads)} input messages; the server can read <b>no</b> individual value out of any of them "
                "(masked words or ciphertexts; see the checks).</p>")
    rows = [[_fmt(x["round"]), _e(x["sender"]), _e(x["kind"]), _fmt(x["weight"]), _fmt(x["update_norm"])]
            for x in readable]
    return ("<p>The server reads these per-client values directly from the payloads:</p>"
            + _table(["round", "client", "kind", "weight e_i", "‖Δ_i‖"], rows))


def _attacks(r: dict) -> str:
    a = r["attacks"]
    if "skipped" in a["harness"]:
        return f"<p class='muted'>Attacks not run: {_e(a['harness']['skipped'])}</p>"
    h = a["harness"]
    out = (f"<p class='muted'>Simulation: {h['clients']} clients, {h['rounds']} rounds, vectors of {h['dim']:,} "
           f"coordinates, through the <code>{_e(h['backend'])}</code> backend with options "
           f"<code>{_e(h['options'])}</code>; the truth is known to the harness, never to the attacker.</p>")
    if h.get("shape_differs"):
        out += ("<div class='box high'><b>The simulation does not have this run's shape:</b><ul>"
                + "".join(f"<li>{_e(x)}</li>" for x in h["shape_differs"]) + "</ul></div>")
    rows = [[_e(x["name"]), _pill(x["verdict"]), _fmt(x["value"]), _e(x["chance"])] for x in a["results"]]
    out += _table(["attack", "verdict", "value", "chance level"], rows)
    imgs = []
    by = {x["name"]: x for x in a["results"]}
    if "update recovery" in by:
        d = by["update recovery"]["details"]
        imgs.append(_img(plots.recovery(d["cosines"], d["chance_bound"], d["sum_baseline_cosine"]), "update recovery"))
    if "gain inference" in by:
        d = by["gain inference"]["details"]
        imgs.append(_img(plots.gains(d["inferred"], d["true_gain"]), "gain inference"))
    if "membership (per message)" in by:
        d = by["membership (per message)"]["details"]
        imgs.append(_img(plots.membership(d["observed"], d["unobserved"], "Membership from one message"), "membership"))
        out += (f"<p>Per-message membership: empirical ε = {_fmt(d['epsilon'])} "
                f"(95% lower bound {_fmt(d['epsilon_lower'])}) at δ = {_fmt(d['delta'])}.</p>")
        if "null_epsilon" in d:
            out += (f"<p class='muted'>How the verdict and this ε agree: the verdict reads the AUC "
                    f"(chance: within 0.5 ± {CHANCE_AUC_BAND:g}). The ε is a one-shot estimate from only "
                    f"{d['messages']} planted canaries, and its point value is far from 0 even when nothing "
                    f"leaks: the same estimator with <i>nothing planted</i> (never-planted directions in the "
                    f"canaries' place) gives ε = {_fmt(d['null_epsilon'])} (95% lower bound "
                    f"{_fmt(d['null_epsilon_lower'])}, AUC {_fmt(d['null_auc'])}) here. Only a lower bound "
                    f"well above that chance level is evidence of leakage; the plaintext backend's canaries "
                    f"give AUC ≈ 1 and an unbounded ε.</p>")
    return out + '<div class="grid">' + "".join(imgs) + "</div>"


def _audit_row(label: str, a: dict) -> list[str]:
    if "skipped" in a:
        return [_e(label), _e(a["skipped"]), "", "", "", ""]
    st = a["statistics"]
    return [_e(label), _e(f"{a['mechanism']} / {a['backend']}"), _fmt(a["noise_multiplier"]),
            f"{_fmt(st['sum']['epsilon'])} (≥ {_fmt(st['sum']['epsilon_lower'])}), AUC {_fmt(st['sum']['auc'])}",
            f"{_fmt(st['message']['epsilon'])} (≥ {_fmt(st['message']['epsilon_lower'])}), "
            f"AUC {_fmt(st['message']['auc'])}", _fmt(a["expected_sum_epsilon"])]


def _example_level(ex: dict | None) -> str:
    if not ex:
        return "<p>No example-level DP-SGD in the config.</p>"
    inputs = _table(["input", "value"], [[_e(k), _fmt(v)] for k, v in ex["inputs"].items()])
    own = (f" Clients with their own data file ({_e(', '.join(ex['own_data_clients']))}) have their own record "
           "count; the config's data.train_size is assumed." if ex["own_data_clients"] else "")
    return (f"<p><b>Example level: ε = {_fmt(ex['epsilon_after_rounds_done'])} after the rounds run "
            f"({_fmt(ex['epsilon_after_all_rounds'])} after all planned rounds), {_e(ex['status'])}</b>: "
            f"{_e(ex['why'])}. Formula: <code>{_e(ex['formula'])}</code>.{own}</p>{inputs}")


def _dp(r: dict) -> str:
    d = r["dp"]
    out = ""
    if "skipped" in d:
        out += f"<p class='muted'>Client-level DP not audited: {_e(d['skipped'])}</p>"
    per_round = ", ".join(f"round {x['round']}: {_fmt(x['dp_client_epsilon'])}" for x in d["epsilon_per_round"])
    cl = d.get("client_level")
    if cl and "skipped" not in cl:
        path = ("the masked backend's integer Skellam shares" if cl["mechanism"] == "skellam"
                else "<code>ClientNoise.privatize</code>")
        verdict = (_pill("pass") + " consistent" if d["consistent"]
                   else _pill("high") + " the audit's lower bound exceeds the accountant's ε")
        out += (f"<p>Client-level DP, mechanism <code>{_e(cl['mechanism'])}</code>: noise multiplier "
                f"{_fmt(cl['noise_multiplier'])}, sum std σ = {_fmt(cl['sigma'])}, {cl['rounds']} round(s), "
                f"sampling rate {_fmt(cl['sample_rate'])}. ε spent per round (server/metrics.jsonl): "
                f"{_e(per_round or 'not logged')}. {verdict}</p>"
                f"<p>One-shot canary audit of the run's own mechanism (Andrew et al., ICLR 2024): "
                f"{cl['trials'] * cl['clients']} canary clients at full sensitivity through "
                f"{path} and the real <code>{_e(cl['backend'])}</code> secure sum; "
                f"empirical ε = {_fmt(d['empirical_epsilon'])} (95% lower bound {_fmt(d['empirical_epsilon_lower'])}, "
                f"{_e(d['statistic'])} statistic) against the accountant's ε = {_fmt(d['reference_epsilon'])}.</p>")
    elif cl:
        out += f"<p>{_pill('warn')} Client-level mechanism not audited: {_e(cl['skipped'])}</p>"
    else:
        out += ("<p>No client-level DP noise in this run. Secure aggregation hides <i>which</i> client sent what, "
                "not <i>whether</i> a record shaped the sum: whoever holds the sums sees planted canaries.</p>")
    rows = [_audit_row("with the run's noise", cl)] if cl else []
    if d.get("control"):
        rows.append(_audit_row("control: same audit without noise", d["control"]))
    if rows:
        out += _table(["audit", "mechanism / backend", "noise multiplier", "ε from the sums",
                       "ε from each message", "expected ε (sums)"], rows)
    shown = cl if cl and "skipped" not in cl else d.get("control")
    if shown and "skipped" not in shown:
        title = "Canaries, run's mechanism" if shown is cl else "Canaries without noise (control)"
        out += _img(plots.membership(shown["observed"], shown["unobserved"], title), "dp audit")
    return out + _example_level(d.get("example_level"))


def render(report: dict) -> str:
    rows = report["inventory"]["rows"]
    traffic = _img(plots.bytes_by_stage(rows), "bytes by stage") if rows else ""
    be = report["backend"]
    body = f"""
<h1>What the server learns — audit of <code>{_e(report['run'])}</code></h1>
<p class="muted">Read from {_e(', '.join(report['reads']))} only (never the clients' folders).
Backend: configured <code>{_e(be['configured'])}</code>,
seen in the messages <code>{_e(be['inferred_from_messages'])}</code>.</p>
{_summary(report)}
<h2>1. Inventory of the transcript</h2>{_inventory(report)}<div class="grid">{traffic}</div>
<h2>2. Flags</h2>{_flags(report)}
<h2>3. Checks on the payloads and the server's folder</h2>{_checks(report)}
<h2>4. What the server reads from each message of this run</h2>{_reads(report)}
<h2>5. Attacks on the server's view</h2>{_attacks(report)}
<h2>6. Differential privacy</h2>{_dp(report)}
<p class="muted">Generated by <code>secure-fgrpo audit</code>. Machine-readable: report.json next to this file.</p>
"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>secure_fgrpo audit</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")
