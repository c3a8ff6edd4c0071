"""With the institutions' own data, "global held-out accuracy" is measured on held-out rows of
their files — not on built-in families nobody trains on — the output says so, and
``secure-fgrpo eval RUN --data FILE`` scores the global adapter on a file's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import QUICK, small_run

from secure_fgrpo.cli import main
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import to_dict
from secure_fgrpo.data.local import load_problems
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.model.tiny import warm_start_prompts
from secure_fgrpo.report import save_run_config
from secure_fgrpo.tasks import sample_problems


def _write(path: Path, problems) -> str:
    path.write_text("".join(json.dumps({"prompt": p.prompt, "answer": p.answer, "kind": p.family}) + "\n"
                            for p in problems))
    return str(path)


@pytest.fixture(scope="module")
def own_run(quick_model_dir, tmp_path_factory) -> tuple[Path, Federation, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("own")
    files = {"a": _write(tmp / "a.jsonl", sample_problems(["unit"], 40, seed=11)),
             "b": _write(tmp / "b.jsonl", sample_problems(["dose"], 40, seed=12))}
    held = _write(tmp / "b-held.jsonl", sample_problems(["dose"], 6, seed=13, space="held_out"))
    raw = small_run(**{"federation.rounds": 1})
    raw["clients"] = [{"name": "a", "data": files["a"]},
                      {"name": "b", "data": files["b"], "eval_data": held, "reward": {"scale": 10.0}}]
    cfg = config_from_dict(raw)
    run = tmp / "run"
    save_run_config(run, to_dict(cfg))
    fed = Federation(cfg, run)
    fed.run()
    return run, fed, {**files, "held": held}


def test_global_eval_is_the_clients_held_out_rows_only(own_run) -> None:
    run, fed, files = own_run
    a, b = fed.data.clients["a"], fed.data.clients["b"]
    assert len(a.eval) == 8 and {p.family for p in a.eval} == {"unit"}  # 20% of a's 40 distinct prompts
    assert [p.prompt for p in b.eval] == [json.loads(x)["prompt"] for x in Path(files["held"]).read_text().splitlines()]
    assert fed.data.global_eval == a.eval + b.eval  # no built-in family was added
    assert not {p.prompt for p in a.eval + b.eval} & {p.prompt for p in a.train + b.train}
    about = json.loads((run / "global_eval.json").read_text())
    assert about["prompts"] == 14
    assert files["a"] in about["about"] and files["held"] in about["about"] and "built-in" not in about["about"]
    rows = [json.loads(x) for x in (run / "global_metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1]
    # An accuracy on the clients' private held-out rows is not the server's to record.
    server_rows = [json.loads(x) for x in (run / "server" / "metrics.jsonl").read_text().splitlines()]
    assert server_rows and all("global_accuracy" not in r for r in server_rows)


def test_eval_cli_scores_a_data_file_and_says_what_it_measured(own_run, capsys) -> None:
    run, fed, files = own_run
    rows = load_problems(files["a"])
    warm = sum(p.prompt in warm_start_prompts(QUICK) for p in rows)
    assert main(["eval", str(run), "--data", files["a"]]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"on {files['a']}: {fed.evaluate_global(1, rows):.1%}" in out and "over 40 rows" in out
    trained = sum(p.prompt in {q.prompt for q in fed.data.clients["a"].train} for p in rows)
    assert trained >= 30 and f"{trained} are training prompts of this run" in out  # recall, and it says so
    assert (f"{warm} were in the embedded model's warm start" if warm else "none was in the embedded") in out
    assert main(["eval", str(run), "--data", files["held"]]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "none is a training prompt of this run" in out and "none was in the embedded model's warm start" in out
    assert main(["eval", str(run)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "on the global held-out set (14 rows held out from the clients' own data" in out
    assert "global = the global adapter on 14 rows held out" in out


def test_eval_cli_names_a_bad_data_file(own_run, capsys, tmp_path) -> None:
    run, _, _ = own_run
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "x", "answer": "maybe", "kind": "yesno"}) + "\n")
    assert main(["eval", str(run), "--data", str(bad)]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "bad.jsonl: row 0" in out and "Traceback" not in out
