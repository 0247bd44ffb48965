"""Train the user's CNN in the user's own loop, with the defense privtune recommended.

    .venv/bin/python examples/mnist_cnn/train_with_recommendation.py runs/mnist_cnn/recommendation.yaml

Everything here is ordinary PyTorch the user already has (model, optimizer,
data loader, epoch loop); privtune contributes two calls:

* ``load_recommendation(path)``: reads and validates the exported file;
* ``prepare_training(rec, model, optimizer, loader)``: applies the defense
  (Opacus DP-SGD with the exported σ and C, weight decay on the optimizer,
  dropout on the model's dropout layers, label smoothing in the returned
  loss) and hands back an early-stopping helper.

To check the prediction, the loop trains on as many images as privtune's
*members* role held (the recommendation's utility was measured for that
training-set size) and measures accuracy on the loader's own test split, the
same records privtune's test role used. It prints the predicted test accuracy
with its interval next to the achieved one, and with ``--json FILE`` writes
them as JSON. In production you would train on all your data instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from defenses import load_recommendation, prepare_training

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the user's own modules, next to this script
from cnn import build_cnn  # noqa: E402
from mnist_data import load  # noqa: E402


def accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(X).argmax(dim=1) == y).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recommendation", type=Path, help="recommendation.yaml or .json from privtune")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", type=Path, help="also write the predicted and achieved accuracy here")
    args = parser.parse_args(argv)

    rec = load_recommendation(args.recommendation)
    print(f"defense: {rec.defense.describe()}")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    # The user's data, split the user's way: a training set of the tuned size and a validation set.
    X, y, X_test, y_test = load(test_per_class=100)  # as in config.yaml's data.options
    roles = rec.document["data"]["roles"]
    order = rng.permutation(len(X))
    train, val = order[: roles["members"]], order[roles["members"] : roles["members"] + roles["validation"]]
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    X_val, y_val = X[val], y[val]
    X_test, y_test = torch.from_numpy(X_test), torch.from_numpy(y_test)

    # The user's model, optimizer and loader, built as usual (the recipe privtune tuned with).
    model = build_cnn(input_shape=(1, 28, 28), n_classes=10, dropout=0.0, width=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=rec.recipe.learning_rate, momentum=0.9)
    loader = DataLoader(
        TensorDataset(X[train], y[train]),
        batch_size=rec.recipe.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(args.seed),
    )

    ready = prepare_training(rec, model, optimizer, loader, noise_seed=args.seed)

    for epoch in range(1, ready.epochs + 1):
        ready.model.train()
        for xb, yb in ready.data_loader:
            ready.optimizer.zero_grad()
            loss = ready.criterion(ready.model(xb), yb)
            loss.backward()
            ready.optimizer.step()
        val_accuracy = accuracy(ready.model, X_val, y_val)
        eps = ready.epsilon()
        print(f"epoch {epoch:2d}: validation accuracy {val_accuracy:.4f}" + (f", ε {eps:.2f}" if eps else ""))
        if ready.should_stop(val_accuracy):
            print(f"early stop after epoch {epoch}")
            break

    trained = ready.release()
    achieved = accuracy(trained, X_test, y_test)
    expected = rec.document["expected"]["utility"]
    low, high = expected["test_interval"]
    within = low <= achieved <= high
    print(
        f"test accuracy: achieved {achieved:.4f}; privtune predicted {expected['test']:.4f} "
        f"[{low:.4f}, {high:.4f}] -> {'within' if within else 'OUTSIDE'} the interval"
    )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "predicted": expected["test"],
                    "interval": [low, high],
                    "achieved": achieved,
                    "within": within,
                    "epsilon": ready.epsilon(),
                    "defense": rec.defense.describe(),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
