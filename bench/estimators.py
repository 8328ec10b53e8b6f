"""Canned estimators against scikit-learn and XGBoost's own API, side by side in one run.

  fashion   Fashion-MNIST, flattened pixels as 784 numeric columns: LinearClassifier,
            DNNClassifier, BoostedTreesClassifier vs LogisticRegression, MLPClassifier,
            HistGradientBoostingClassifier and xgboost.train on the same arrays (accuracy, seconds;
            LogisticRegression and MLPClassifier timed with their BLAS's threads and on one thread).
  tabular   scikit-learn's bundled breast_cancer, wine (classification) and diabetes
            (regression): each estimator vs the nearest scikit-learn model, same split and seed.
  bigcsv    generated CSVs of --gb gigabytes each (numeric and string columns; removed afterwards):
            "narrow" (6 columns, ~64 bytes a row) and "wide" (28 columns: 14 floats, 6 counts,
            7 strings of 3 to 20,000 values, ~370 bytes a row). BoostedTreesClassifier and
            DNNClassifier trained from each file, each in its own process so that peak RSS is
            measured apart; rows/s.

    .venv/bin/python bench/estimators.py [--only fashion,tabular,bigcsv] [--train-rows 60000] [--gb 5]
        [--tables narrow,wide] [--kinds trees,dnn] [--fashion-models linear,dnn,trees] [--epochs 10] [--n-trees 100]

Writes bench/results/estimators.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results" / "estimators.json"


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# -- Fashion-MNIST -------------------------------------------------------------------------------

FASHION_GROUPS = ("linear", "dnn", "trees")
# The Keras estimators choose between torch's thread count and one thread (whichever their first
# steps ran faster); the linear and MLP peers are timed with their BLAS's own thread count and on one.
PEER_THREADS = (None, 1)


def fashion(train_rows: int, epochs: int, n_trees: int, groups: tuple[str, ...] = FASHION_GROUPS) -> list[dict]:
    import xgboost as xgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    import layerflow as lf

    (x_train, y_train), (x_test, y_test) = lf.datasets.fashion_mnist()
    x_train = x_train.reshape(len(x_train), -1)[:train_rows].astype(np.float32) / 255.0
    y_train = y_train[:train_rows].astype(np.int64)
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255.0
    y_test = y_test.astype(np.int64)
    columns = [f"p{i}" for i in range(x_train.shape[1])]
    train = pd.DataFrame(x_train, columns=columns).assign(label=y_train)
    test = pd.DataFrame(x_test, columns=columns).assign(label=y_test)
    spec = lf.feature_spec(train, label="label").numeric(*columns).fit()  # raw [0, 1] pixels, as the peers see them
    rows = []

    def ours(name, est, **train_args):
        _, seconds = timed(lambda: est.train(train, **train_args))
        accuracy = est.evaluate(test)["accuracy"]
        rows.append({"model": name, "library": "layerflow", "accuracy": accuracy, "seconds": seconds, **setting})
        print(rows[-1], flush=True)

    def peer(name, fit, predict, threads=None):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=threads):  # None: the BLAS's own thread count
            _, seconds = timed(fit)
        accuracy = float((predict(x_test) == y_test).mean())
        rows.append(
            {
                "model": name,
                "library": "peer",
                "accuracy": accuracy,
                "seconds": seconds,
                "threads": threads or "default",
                **setting,
            }
        )
        print(rows[-1], flush=True)

    setting = {"train_rows": len(x_train), "epochs": epochs, "n_trees": n_trees}
    if "linear" in groups:
        ours(
            "LinearClassifier",
            lf.estimators.LinearClassifier(
                label="label",
                feature_columns=spec,
                n_classes=10,
                optimizer="Adam",
                learning_rate=0.001,
                batch_size=128,
                seed=0,
            ),
            epochs=epochs,
        )
        for threads in PEER_THREADS:
            logistic = LogisticRegression(max_iter=200)
            peer("LogisticRegression", lambda: logistic.fit(x_train, y_train), logistic.predict, threads)
    if "dnn" in groups:
        ours(
            "DNNClassifier",
            lf.estimators.DNNClassifier(
                label="label",
                feature_columns=spec,
                n_classes=10,
                hidden_units=[256, 128],
                dropout=0.2,
                optimizer="Adam",
                learning_rate=0.001,
                batch_size=128,
                seed=0,
            ),
            epochs=epochs,
        )
        for threads in PEER_THREADS:
            mlp = MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=epochs, random_state=0)
            peer("MLPClassifier", lambda: mlp.fit(x_train, y_train), mlp.predict, threads)
    if "trees" in groups:
        ours(
            "BoostedTreesClassifier",
            lf.estimators.BoostedTreesClassifier(
                label="label",
                feature_columns=spec,
                n_classes=10,
                n_trees=n_trees,
                max_depth=6,
                learning_rate=0.3,
                seed=0,
            ),
        )
        hgb = HistGradientBoostingClassifier(
            max_iter=n_trees, max_depth=6, learning_rate=0.3, early_stopping=False, random_state=0
        )
        peer("HistGradientBoostingClassifier", lambda: hgb.fit(x_train, y_train), hgb.predict)
        params = {"objective": "multi:softprob", "num_class": 10, "max_depth": 6, "eta": 0.3, "tree_method": "hist"}
        box = {}
        peer(
            "xgboost.train",
            lambda: box.setdefault("b", xgb.train(params, xgb.DMatrix(x_train, y_train), n_trees)),
            lambda x: box["b"].predict(xgb.DMatrix(x)).argmax(axis=1),
        )
    return rows


# -- bundled tabular data ------------------------------------------------------------------------


def tabular() -> list[dict]:
    from sklearn import datasets
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import layerflow as lf

    E = lf.estimators
    rows = []
    for name, loader, task in (
        ("breast_cancer", datasets.load_breast_cancer, "binary"),
        ("wine", datasets.load_wine, "multiclass"),
        ("diabetes", datasets.load_diabetes, "regression"),
    ):
        frame = loader(as_frame=True).frame
        frame.columns = [c.replace(" ", "_") for c in frame.columns]
        train, test = train_test_split(frame, test_size=0.25, random_state=0)
        x_train, x_test = train.drop(columns=["target"]).to_numpy(), test.drop(columns=["target"]).to_numpy()
        y_train, y_test = train.target.to_numpy(), test.target.to_numpy()
        classes = int(frame.target.nunique()) if task != "regression" else None
        if task == "regression":
            pairs = [
                (
                    E.LinearRegressor(label="target", optimizer="Adam", learning_rate=0.5, batch_size=32, seed=0),
                    300,
                    make_pipeline(StandardScaler(), LinearRegression()),
                ),
                (
                    E.DNNRegressor(
                        label="target",
                        hidden_units=[64, 32],
                        optimizer="Adam",
                        learning_rate=0.01,
                        batch_size=32,
                        seed=0,
                    ),
                    100,
                    make_pipeline(
                        StandardScaler(), MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=2000, random_state=0)
                    ),
                ),
                (
                    E.BoostedTreesRegressor(label="target", n_trees=100, max_depth=3, learning_rate=0.05, seed=0),
                    None,
                    HistGradientBoostingRegressor(max_iter=100, max_depth=3, learning_rate=0.05, random_state=0),
                ),
            ]
        else:
            # the estimators' own (tf.estimator's) optimizer defaults: Ftrl 0.2 (linear), Adagrad 0.05 (DNN);
            # on a validation split of breast_cancer's training rows they beat Adam 0.05 / 0.01 (0.991 vs
            # 0.972 linear, 0.981 vs 0.972 DNN), the settings of the earlier run
            pairs = [
                (
                    E.LinearClassifier(label="target", n_classes=classes, seed=0),
                    50,
                    make_pipeline(StandardScaler(), LogisticRegression()),
                ),
                (
                    E.DNNClassifier(label="target", n_classes=classes, hidden_units=[64, 32], seed=0),
                    50,
                    make_pipeline(
                        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=500, random_state=0)
                    ),
                ),
                (
                    E.BoostedTreesClassifier(label="target", n_classes=classes, n_trees=100, max_depth=3, seed=0),
                    None,
                    HistGradientBoostingClassifier(max_iter=100, max_depth=3, random_state=0),
                ),
            ]
        for est, epochs, peer in pairs:
            _, ours_seconds = timed(lambda: est.train(train, epochs=epochs) if epochs else est.train(train))
            metrics = est.evaluate(test)
            _, peer_seconds = timed(lambda: peer.fit(x_train, y_train))
            predicted = peer.predict(x_test)
            if task == "regression":
                ours_score, peer_score = metrics["mse"] ** 0.5, float(np.sqrt(np.mean((predicted - y_test) ** 2)))
                metric = "rmse"
            else:
                ours_score, peer_score = metrics["accuracy"], float((predicted == y_test).mean())
                metric = "accuracy"
            rows.append(
                {
                    "data": name,
                    "estimator": est.kind,
                    "peer": type(peer[-1] if hasattr(peer, "steps") else peer).__name__,
                    "metric": metric,
                    "layerflow": ours_score,
                    "peer_score": peer_score,
                    "seconds": ours_seconds,
                    "peer_seconds": peer_seconds,
                }
            )
            print(rows[-1], flush=True)
    return rows


# -- a CSV larger than memory ----------------------------------------------------------------------

CITIES = [f"city_{i:03d}" for i in range(200)]
BIG_TABLES = ("narrow", "wide")
BIG_KINDS = ("trees", "dnn")
# the wide table: HIGGS-like float columns (full precision), Criteo-like counts and categories
WIDE_FLOATS, WIDE_INTS = 14, 6
WIDE_CATEGORIES = (3, 12, 50, 200, 1_000, 5_000, 20_000)  # vocabulary size of each string column


def generate(path: Path, gigabytes: float) -> int:
    """The narrow table: 2 floats, an int, 2 strings (200 and 3 values), a 0/1 label y (~64 bytes a row)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(0)
    target, rows, block = gigabytes * 1e9, 0, 500_000
    with pcsv.CSVWriter(
        path,
        pa.schema(
            [
                ("a", pa.float64()),
                ("b", pa.float64()),
                ("c", pa.int64()),
                ("city", pa.string()),
                ("device", pa.string()),
                ("y", pa.int64()),
            ]
        ),
    ) as writer:
        while path.stat().st_size < target:
            a, b = rng.normal(size=block), rng.uniform(0, 100, block)
            city = rng.integers(0, len(CITIES), block)
            device = rng.integers(0, 3, block)
            logit = a + b / 50 - 1 + (city % 7 == 0) * 1.5 - (device == 2) * 1.0
            writer.write_table(
                pa.table(
                    {
                        "a": a,
                        "b": b,
                        "c": rng.integers(0, 1000, block),
                        "city": np.asarray(CITIES, dtype=object)[city],
                        "device": np.asarray(["phone", "tablet", "desktop"], dtype=object)[device],
                        "y": (rng.uniform(size=block) < 1 / (1 + np.exp(-logit))).astype(np.int64),
                    }
                )
            )
            rows += block
    return rows


def generate_wide(path: Path, gigabytes: float) -> int:
    """The wide table: 14 floats f0.., 6 ints i0.., 7 strings s0.. (3 to 20,000 values), label y (~370 bytes a row)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(1)
    target, rows, block = gigabytes * 1e9, 0, 200_000
    vocabularies = [
        np.asarray([f"s{k}_{v:05d}" for v in range(size)], dtype=object) for k, size in enumerate(WIDE_CATEGORIES)
    ]
    schema = pa.schema(
        [(f"f{j}", pa.float64()) for j in range(WIDE_FLOATS)]
        + [(f"i{j}", pa.int64()) for j in range(WIDE_INTS)]
        + [(f"s{k}", pa.string()) for k in range(len(WIDE_CATEGORIES))]
        + [("y", pa.int64())]
    )
    with pcsv.CSVWriter(path, schema) as writer:
        while path.stat().st_size < target:
            floats = rng.normal(size=(block, WIDE_FLOATS))
            ints = rng.poisson(lam=[1, 3, 10, 30, 100, 1000], size=(block, WIDE_INTS))
            codes = [rng.zipf(1.3, block) % size for size in WIDE_CATEGORIES]  # long-tailed, as real categories are
            logit = (
                floats[:, 0]
                - 0.5 * floats[:, 1] * floats[:, 2]
                + np.log1p(ints[:, 2]) / 3
                - 0.7
                + (codes[1] % 3 == 0) * 0.8
                - (codes[4] % 5 == 1) * 0.6
            )
            columns = {f"f{j}": floats[:, j] for j in range(WIDE_FLOATS)}
            columns.update({f"i{j}": ints[:, j] for j in range(WIDE_INTS)})
            columns.update({f"s{k}": vocabularies[k][code] for k, code in enumerate(codes)})
            columns["y"] = (rng.uniform(size=block) < 1 / (1 + np.exp(-logit))).astype(np.int64)
            writer.write_table(pa.table(columns, schema=schema))
            rows += block
    return rows


def big_spec(table: str, sample):
    """The feature spec of a generated table, fitted on a sample of its rows."""
    import layerflow as lf

    spec = lf.feature_spec(sample, label="y")
    if table == "narrow":
        return spec.numeric("a", "b", "c", normalizer="standard").categorical_vocab("city", "device").fit()
    numeric = [f"f{j}" for j in range(WIDE_FLOATS)] + [f"i{j}" for j in range(WIDE_INTS)]
    return (
        spec.numeric(*numeric, normalizer="standard")
        .categorical_vocab(*[f"s{k}" for k in range(len(WIDE_CATEGORIES))])
        .fit()
    )


class RssSampler:
    """Largest resident memory seen, as a whole and its anonymous and file-backed parts (/proc/self/status)."""

    FIELDS = ("VmRSS", "RssAnon", "RssFile")

    def __init__(self, every: float = 0.25):
        import threading

        self.peak = dict.fromkeys(self.FIELDS, 0)
        self._every, self._stop = every, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with open("/proc/self/status") as status:
                for line in status:
                    key, _, value = line.partition(":")
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(value.split()[0]) * 1024)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return {f"peak_{key}_bytes": value for key, value in self.peak.items()}


def big_worker(kind: str, path: str, spec_path: str) -> None:
    import layerflow as lf

    spec = lf.load_feature_spec(spec_path)
    data = lf.data.csv_dataset(path)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Python, pyarrow, Keras, xgboost loaded
    sampler = RssSampler()
    if kind == "trees":
        est = lf.estimators.BoostedTreesClassifier(
            label="y", feature_columns=spec, n_trees=20, max_depth=6, batch_size=65_536, seed=0
        )
        _, seconds = timed(lambda: est.train(data))  # the quantile matrix is streamed in; rounds read its disk pages
    else:
        est = lf.estimators.DNNClassifier(
            label="y",
            feature_columns=spec,
            hidden_units=[64, 32],
            optimizer="Adam",
            learning_rate=0.001,
            batch_size=4096,
            shuffle_buffer=100_000,
            seed=0,
        )
        _, seconds = timed(lambda: est.train(data, epochs=1))
    sampled = sampler.stop()
    accuracy = est.evaluate(lf.data.csv_dataset(path).take(200_000))["accuracy"]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "accuracy": accuracy,
                "peak_rss_bytes": peak,
                "rss_after_imports_bytes": baseline,
                **sampled,
            }
        )
    )


def bigcsv(gigabytes: float, table: str, kinds: tuple[str, ...] = BIG_KINDS) -> dict:
    import layerflow as lf

    with tempfile.TemporaryDirectory(prefix="layerflow-bench-") as folder:
        path = Path(folder) / f"big_{table}.csv"
        rows, seconds = timed(lambda: (generate if table == "narrow" else generate_wide)(path, gigabytes))
        print(f"{table}: generated {path.stat().st_size / 1e9:.2f} GB, {rows:,} rows in {seconds:.0f} s", flush=True)
        spec = big_spec(table, lf.data.csv_dataset(str(path)).take(200_000))
        spec.save(Path(folder) / "spec.json")
        columns = len(next(lf.data.csv_dataset(str(path)).take(1).chunks()))
        result = {"file_bytes": path.stat().st_size, "rows": rows, "columns": columns, "runs": []}
        for kind in kinds:
            out = subprocess.run(
                [sys.executable, __file__, "--worker", kind, str(path), str(Path(folder) / "spec.json")],
                capture_output=True,
                text=True,
            )
            if out.returncode != 0:
                raise SystemExit(f"{table} {kind} worker failed:\n{out.stderr[-4000:]}")
            run = json.loads(out.stdout.strip().splitlines()[-1])
            run.update(kind=kind, rows_per_second=rows / run["seconds"])
            result["runs"].append(run)
            print(table, run, flush=True)
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="fashion,tabular,bigcsv")
    parser.add_argument("--train-rows", type=int, default=60_000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-trees", type=int, default=100)
    parser.add_argument("--gb", type=float, default=5.0)
    parser.add_argument("--tables", default=",".join(BIG_TABLES), help="which generated CSVs bigcsv runs: narrow,wide")
    parser.add_argument("--kinds", default=",".join(BIG_KINDS), help="which estimators bigcsv trains: trees,dnn")
    parser.add_argument(
        "--fashion-models",
        default=",".join(FASHION_GROUPS),
        help="which Fashion-MNIST pairs to (re)run: linear,dnn,trees",
    )
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "CSV", "SPEC"))
    args = parser.parse_args()
    if args.worker:
        big_worker(*args.worker)
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    parts = args.only.split(",")
    fresh_keys = [part for part in ("tabular", "fashion", "bigcsv") if part in parts]
    if "tabular" in parts:
        results["tabular"] = tabular()
    if "fashion" in parts:
        groups = tuple(args.fashion_models.split(","))
        unknown = sorted(set(groups) - set(FASHION_GROUPS))
        if unknown:
            parser.error(f"--fashion-models: {unknown} not in {FASHION_GROUPS}")
        fresh = fashion(args.train_rows, args.epochs, args.n_trees, groups)
        # rows of groups not rerun stay, each row saying the rows/epochs/trees it was measured with
        kept = [r for r in results.get("fashion", {}).get("rows", []) if _group(r["model"]) not in groups]
        results["fashion"] = {"rows": kept + fresh}
    if "bigcsv" in parts:
        tables = tuple(args.tables.split(","))
        unknown = sorted(set(tables) - set(BIG_TABLES))
        if unknown:
            parser.error(f"--tables: {unknown} not in {BIG_TABLES}")
        big = results.get("bigcsv", {})
        big = big if "runs" not in big else {}  # a result from before the tables had names
        kinds = tuple(args.kinds.split(","))
        if sorted(set(kinds) - set(BIG_KINDS)):
            parser.error(f"--kinds: {sorted(set(kinds) - set(BIG_KINDS))} not in {BIG_KINDS}")
        for table in tables:  # each table written as soon as it is done (a later one may not finish)
            fresh = bigcsv(args.gb, table, kinds)
            kept = [
                run
                for run in big.get(table, {}).get("runs", [])
                if run["kind"] not in kinds and big[table]["rows"] == fresh["rows"]
            ]  # runs of kinds not rerun, on the same table
            big[table] = {**fresh, "runs": kept + fresh["runs"]}
            results["bigcsv"] = big
            _write({"bigcsv": big})
    _write({key: results[key] for key in fresh_keys})
    print_table(results)


def _write(fresh: dict) -> None:
    """Writes the parts measured now into the results file, keeping the parts other runs wrote since."""
    RESULTS.parent.mkdir(exist_ok=True)
    latest = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**latest, **fresh}, indent=2) + "\n")


def _group(model: str) -> str:
    """The Fashion-MNIST pair a result row belongs to (linear, dnn or trees)."""
    if model in ("LinearClassifier", "LogisticRegression"):
        return "linear"
    if model in ("DNNClassifier", "MLPClassifier"):
        return "dnn"
    return "trees"


def print_table(results: dict) -> None:
    if "fashion" in results:
        rows = results["fashion"]["rows"]
        print("\nFashion-MNIST (10,000 test rows)")
        ours = {_group(r["model"]): r for r in rows if r["library"] == "layerflow"}
        for row in rows:
            mine = ours.get(_group(row["model"]))
            versus = (
                f"  layerflow's time / this: {mine['seconds'] / row['seconds']:.2f}"
                if mine is not None and row is not mine
                else ""
            )
            threads = f", {row['threads']} threads" if "threads" in row else ""
            print(
                f"  {row['model']:32s} {row['library']:9s} accuracy {row['accuracy']:.4f}  {row['seconds']:8.1f} s"
                f"  ({row.get('train_rows', '?')} rows, {row.get('epochs', '?')} epochs, {row.get('n_trees', '?')} trees"
                f"{threads}){versus}"
            )
    for row in results.get("tabular", []):
        ratio = row["layerflow"] / row["peer_score"]
        print(
            f"  {row['data']:14s} {row['estimator']:24s} {row['metric']} {row['layerflow']:.4f} vs "
            f"{row['peer']} {row['peer_score']:.4f} (ratio {ratio:.3f}); training {row['seconds']:.2f} s vs "
            f"{row['peer_seconds']:.2f} s ({row['seconds'] / row['peer_seconds']:.1f}x)"
        )
    for table, big in results.get("bigcsv", {}).items():
        for run in big.get("runs", []):
            print(
                f"  {table} {big['file_bytes'] / 1e9:.2f} GB CSV ({big['rows']:,} rows, {big.get('columns', '?')} columns), "
                f"{run['kind']}: {run['rows_per_second']:,.0f} rows/s, peak RSS {run['peak_rss_bytes'] / 2**20:,.0f} MiB "
                f"(< 2 GiB: {run['peak_rss_bytes'] < 2 * 2**30}), accuracy {run['accuracy']:.4f}"
            )


if __name__ == "__main__":
    main()
