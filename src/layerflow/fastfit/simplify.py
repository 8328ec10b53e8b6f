"""Making a traced step cheaper to replay, without changing what it computes.

``make_fx`` records every operation Keras issues, including work on values known at trace
time (the loss's constant batch-shape product, the zero checks around it) and a pytree
wrapper that flattens the arguments and rebuilds the outputs on every call. ``simplify``
evaluates the constant parts once, drops what nothing uses, and returns a module that
takes and returns flat lists of tensors (``FlatGraph`` flattens and rebuilds around it
with the structure recorded at trace time).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Set as AbstractSet
from typing import Any

import torch
import torch.fx

from layerflow.errors import StateError
from layerflow.fastfit import _keras_internals as ki


def _schema(target: Any) -> Any:
    """An aten overload's schema (FX types a node's target as any callable or name)."""
    return target._schema


def _argument(node: Any, index: int) -> Any:
    """``node.args[index]`` (FX types it as any argument kind; the callers check what it is)."""
    return node.args[index]


def _is_pure(target: Any) -> bool:
    """An aten operation whose result depends on its inputs only (no mutation, no randomness)."""
    if not ki.is_aten_overload(target):
        return False
    schema = target._schema
    if schema.is_mutable:
        return False
    return (
        torch.Tag.nondeterministic_seeded not in target.tags and torch.Tag.nondeterministic_bitwise not in target.tags
    )


def _mutated_later(node: torch.fx.Node) -> bool:
    """Whether an operation may write into ``node``'s result (an in-place op, or one we cannot see into).

    Such a result must stay a fresh tensor each step: as a folded buffer it would keep every
    step's writes (and their autograd history).
    """
    for user in node.users:
        if user.op != "call_function":
            continue
        if not ki.is_aten_overload(user.target) or _schema(user.target).is_mutable:
            return True
    return False


def fold_constants(module: torch.fx.GraphModule) -> int:
    """Replaces each pure operation whose inputs are all constants (not requiring grad) by its value; returns how many."""
    constant: dict[torch.fx.Node, Any] = {}
    folded = 0
    graph = module.graph
    for node in list(graph.nodes):
        if node.op == "get_attr":
            value = getattr(module, node.target)
            # A captured tensor that requires grad (a variable the trace saw as a constant) must be
            # read at each step: folding it would keep one step's autograd graph in the buffer.
            if not (isinstance(value, torch.Tensor) and value.requires_grad):
                constant[node] = value
            continue
        if node.op != "call_function" or not _is_pure(node.target):
            continue
        inputs = node.all_input_nodes
        if not all(n in constant for n in inputs) or _mutated_later(node):
            continue
        args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), lambda n: constant[n])
        value = node.target(*args, **kwargs)
        if not isinstance(value, torch.Tensor) or value.requires_grad:
            continue  # a value with autograd history depends on a live variable: it is no constant
        value = value.clone()  # a view of another constant becomes a tensor of its own
        name = f"_layerflow_constant{folded}"
        module.register_buffer(name, value)
        with graph.inserting_before(node):
            replacement = graph.get_attr(name)
        replacement.meta = dict(node.meta)
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
        constant[replacement] = value
        folded += 1
    return folded


def _value(node: Any) -> Any:
    """The fake tensor ``make_fx`` recorded for ``node`` (None for a non-node or no record)."""
    return node.meta.get("val") if isinstance(node, torch.fx.Node) else None


def _is_cast(node: Any) -> bool:
    """``aten._to_copy`` changing the dtype only (same device, layout, memory format)."""
    return (
        isinstance(node, torch.fx.Node)
        and node.op == "call_function"
        and node.target is torch.ops.aten._to_copy.default
        and len(node.args) == 1
        and set(node.kwargs) == {"dtype"}
    )


def _exact_integers(dtype: torch.dtype) -> int:
    """How far from 0 every integer is exactly representable in ``dtype``."""
    if dtype.is_floating_point:
        return 2 ** (round(-math.log2(torch.finfo(dtype).eps)) + 1)  # float32: 2**24
    if dtype == torch.bool:
        return 1
    return torch.iinfo(dtype).max


def _is_integer(value: Any) -> bool:
    return (
        isinstance(value, torch.Tensor)
        and not value.dtype.is_floating_point
        and not value.dtype.is_complex
        and value.dtype != torch.bool
    )


def _round_trip_source(node: torch.fx.Node) -> torch.fx.Node | None:
    """The integer tensor ``t`` when ``node`` is ``t`` cast to a float type and back to ``t``'s dtype."""
    if not _is_cast(node) or not _is_cast(node.args[0]):
        return None
    source = _argument(_argument(node, 0), 0)
    value, middle, result = _value(source), _value(node.args[0]), _value(node)
    if not (
        _is_integer(value)
        and isinstance(middle, torch.Tensor)
        and middle.dtype.is_floating_point
        and isinstance(result, torch.Tensor)
        and result.dtype == value.dtype
    ):
        return None
    return source


def _bounded_index(node: Any) -> tuple[torch.fx.Node, int] | None:
    """``(argmax node, its bound)`` when ``node`` is an argmax (values in [0, bound)) under casts
    that keep every such value exact."""
    bound_checks = []
    while _is_cast(node):
        bound_checks.append(_value(node).dtype)
        node = node.args[0]
    if not (
        isinstance(node, torch.fx.Node)
        and node.op == "call_function"
        and node.target in (torch.ops.aten.argmax.default, torch.ops.aten.argmin.default)
    ):
        return None
    scores = _value(node.args[0])
    if not isinstance(scores, torch.Tensor):
        return None
    dim: Any = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    bound = scores.numel() if dim is None else (scores.shape[dim] if scores.ndim else 1)
    if any(bound > _exact_integers(dtype) for dtype in bound_checks):
        return None
    return node, bound


def _counts(node: Any) -> bool:
    """Whether ``node`` casts a boolean mask to a float type that holds its size exactly."""
    if not _is_cast(node):
        return False
    mask, floated = _value(node.args[0]), _value(node)
    return (
        isinstance(mask, torch.Tensor)
        and mask.dtype == torch.bool
        and floated.dtype.is_floating_point
        and mask.numel() <= _exact_integers(floated.dtype)
    )


def _fresh(nodes: Any) -> bool:
    """Whether every node is an operation returning a new tensor (no input, constant or view):
    only such a result may stand for an output, which must not alias what the graph was given."""
    return all(
        isinstance(n, torch.fx.Node)
        and n.op == "call_function"
        and ki.is_aten_overload(n.target)
        and all(r.alias_info is None for r in _schema(n.target).returns)
        for n in nodes
    )


def rewrite_exact_identities(module: torch.fx.GraphModule) -> int:
    """Rewrites patterns whose result is the same without some of their operations; returns how many.

    Keras's sparse categorical cross-entropy and accuracy cast integer labels to float and back,
    and compare labels with predicted classes as floats (the class index cast to int32, then
    float); its mean loss chooses with a constant condition and sums a scalar. For each of these
    the shorter form gives bit-identical values (and errors for the same labels):

    - ``int(float(labels))`` as the target of ``nll_loss`` becomes ``labels``: every label in
      range (below the class count, exact in the float type) or equal to the ignore index
      survives the round trip, and any other label is an error either way;
    - ``float(labels) == float(int32(argmax))`` becomes ``labels == argmax`` when every class
      index is exact in each cast: a label the float cast rounds is too large to equal one;
    - ``where(constant condition, a, b)`` becomes the branch chosen, when it has the result's
      shape and dtype; ``sum`` of a floating scalar becomes the scalar;
    - ``sum(float(mask))`` becomes ``sum(mask, dtype=float)``: a count, exact in any order.
    """
    graph = module.graph
    rewritten = 0
    outputs: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if node.op == "output":
            outputs.update(n for n in node.all_input_nodes)
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        target = node.target
        if target in (torch.ops.aten.nll_loss_forward.default, torch.ops.aten.nll_loss2d_forward.default):
            labels = node.args[1]
            source = _round_trip_source(labels) if isinstance(labels, torch.fx.Node) else None
            scores = _value(node.args[0])
            if source is not None and isinstance(scores, torch.Tensor):
                classes = scores.shape[1] if scores.ndim >= 2 else scores.shape[0]
                middle = _value(labels.args[0]).dtype
                if classes <= _exact_integers(middle):
                    node.replace_input_with(labels, source)
                    rewritten += 1
        elif target is torch.ops.aten.eq.Tensor and len(node.args) == 2 and not node.kwargs:
            for left, right in (node.args, node.args[::-1]):
                bounded = _bounded_index(right)
                if bounded is None or not _is_cast(left):
                    continue
                labels = left.args[0]
                floated = _value(left)
                if not (
                    _is_integer(_value(labels))
                    and floated.dtype.is_floating_point
                    and bounded[1] <= _exact_integers(floated.dtype)
                ):
                    continue
                node.args = (labels, bounded[0])
                rewritten += 1
                break
        elif target is torch.ops.aten.where.self:
            condition, chosen_if_true, chosen_if_false = node.args
            if not (isinstance(condition, torch.fx.Node) and condition.op == "get_attr"):
                continue
            flag = getattr(module, str(condition.target))
            if not isinstance(flag, torch.Tensor) or flag.numel() != 1 or flag.requires_grad:
                continue
            chosen = chosen_if_true if bool(flag) else chosen_if_false
            if node in outputs and not _fresh([chosen]):
                continue
            value, result = _value(chosen), _value(node)
            if (
                isinstance(value, torch.Tensor)
                and isinstance(result, torch.Tensor)
                and value.shape == result.shape
                and value.dtype == result.dtype
                and value.device == result.device
            ):
                node.replace_all_uses_with(chosen)
                rewritten += 1
        elif target is torch.ops.aten.sum.default and len(node.args) == 1 and not node.kwargs and _counts(node.args[0]):
            # sum(float(mask)) counts the True entries: every partial sum is an integer exact in the
            # float type, in any order, so summing the mask straight into that type is the same.
            cast = node.args[0]
            node.args = (cast.args[0],)
            node.kwargs = {"dtype": _value(cast).dtype}
            rewritten += 1
        elif target is torch.ops.aten.sum.default and len(node.args) == 1 and not node.kwargs and node not in outputs:
            value, result = _value(node.args[0]), _value(node)
            if (
                isinstance(value, torch.Tensor)
                and value.ndim == 0
                and value.dtype.is_floating_point
                and isinstance(result, torch.Tensor)
                and result.dtype == value.dtype
            ):
                node.replace_all_uses_with(node.args[0])
                rewritten += 1
    return rewritten


def _in_place_forms() -> dict:
    aten = torch.ops.aten
    return {
        aten.add.Tensor: aten.add_.Tensor,
        aten.sub.Tensor: aten.sub_.Tensor,
        aten.mul.Tensor: aten.mul_.Tensor,
        aten.div.Tensor: aten.div_.Tensor,
        aten.relu.default: aten.relu_.default,
        aten.clamp.default: aten.clamp_.default,
        aten.log.default: aten.log_.default,
    }


def write_in_place(module: torch.fx.GraphModule, accumulators: AbstractSet[str] = frozenset()) -> int:
    """For a graph run without gradients: an elementwise operation whose first operand is a
    fresh intermediate result used by nothing else writes into that operand instead of a new
    tensor (the same kernel, the same values, one allocation fewer). ``accumulators`` names
    inputs the step replaces by a new value (metric totals): their one update writes into them,
    which spares the copy back. Returns how many operations now write in place."""
    forms = _in_place_forms()
    graph = module.graph
    output = next(n for n in graph.nodes if n.op == "output")
    outputs = set(output.all_input_nodes)
    written: set[torch.fx.Node] = set()  # results written into a fresh intermediate: fresh themselves
    changed = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in forms or not node.args:
            continue
        first = node.args[0]
        if not isinstance(first, torch.fx.Node) or len(first.users) != 1:
            continue
        if first.op == "placeholder":
            if first.target not in accumulators or node not in outputs:
                continue
        elif first in outputs or not (first in written or _fresh([first])):
            continue
        operand, result = _value(first), _value(node)
        if not (
            isinstance(operand, torch.Tensor)
            and isinstance(result, torch.Tensor)
            and operand.shape == result.shape
            and operand.dtype == result.dtype
            and operand.device == result.device
            and operand.stride() == result.stride()
        ):
            continue
        node.target = forms[node.target]
        if first.op != "placeholder":
            written.add(node)
        changed += 1
    if changed:
        module.recompile()
    return changed


def _copy_module(module: torch.fx.GraphModule) -> torch.fx.GraphModule:
    with warnings.catch_warnings():  # copying the trace's tree specs warns about torch's own deprecations
        warnings.simplefilter("ignore", FutureWarning)
        return copy.deepcopy(module)


class FlatGraph:
    """A traced step with flat inputs and outputs, called with the traced structure."""

    def __init__(self, module: torch.fx.GraphModule) -> None:
        specs = ki.pytree_specs(module)
        if specs is None:
            raise StateError("expected a graph traced by make_fx from a function of pytree arguments")
        self.in_spec, self.out_spec = specs
        self.lean: FlatGraph | None = None  # the same step without its per-batch logs (steps.py)
        fold_constants(module)
        self.rewritten = rewrite_exact_identities(module)
        ki.use_flat_arguments(module)
        module.graph.eliminate_dead_code()
        module.recompile()
        self.module = module
        self.forward = module.forward
        self.graph = module.graph
        self._step_layout = _step_layout(self.out_spec)

    @property
    def log_keys(self) -> list:
        """Names of the logs a train/test step returns ([] for another layout)."""
        return list(self._step_layout[2]) if self._step_layout else []

    @property
    def code(self) -> str:
        return self.module.code

    def __call__(self, *arguments: Any) -> Any:
        return ki.tree_unflatten(self.forward(*ki.tree_leaves(arguments)), self.out_spec)

    def without_logs(self) -> FlatGraph | None:
        """The same step returning ``(loss, non-trainable, metrics, {})``: the per-batch logs
        (metric results) are not computed. None when the step's outputs have another layout."""
        if self._step_layout is None:
            return None
        non_trainable, metrics, _ = self._step_layout
        module = _copy_module(self.module)
        output = next(n for n in module.graph.nodes if n.op == "output")
        output.args = (list(output.args[0])[: 1 + non_trainable + metrics],)
        module.graph.eliminate_dead_code()
        module.recompile()
        variant = copy.copy(self)
        variant.module, variant.forward, variant.graph = module, module.forward, module.graph
        variant._step_layout = (non_trainable, metrics, [])
        return variant

    def script_for_inference(self) -> bool:
        """Prepares the graph for steps run without gradients (evaluate, predict).

        Elementwise results are written in place where that changes no value (see
        ``write_in_place``), and the graph runs through TorchScript's interpreter (C++, no
        Python per operation); a graph TorchScript cannot compile, or whose first scripted run
        fails, keeps the Python replay. A first run that fails puts the metric totals it may
        have updated back, so that the batch can run again elsewhere. Returns whether the graph
        is scripted.
        """
        accumulators = self._accumulators()
        self.in_place = write_in_place(self.module, accumulators)
        placeholders = [n.target for n in self.graph.nodes if n.op == "placeholder"]
        updated = [i for i, name in enumerate(placeholders) if name in accumulators]
        scripted = ki.script_graph(self.module)
        python_forward = self.module.forward
        if scripted is None and not updated:
            return False

        def first_run(*leaves: Any) -> Any:
            before = [leaves[i].clone() for i in updated]

            def restore() -> None:
                for i, value in zip(updated, before):
                    leaves[i].copy_(value)

            if scripted is not None:
                try:
                    outputs = scripted(*leaves)
                    self.forward = scripted.forward  # the compiled method, without nn.Module's call hooks
                    return outputs
                except Exception:  # noqa: BLE001 - TorchScript's own limits: replay in Python instead
                    restore()
            self.forward = python_forward
            try:
                return python_forward(*leaves)
            except Exception:
                restore()
                raise

        self.forward = first_run
        return scripted is not None

    def _accumulators(self) -> set[str]:
        """Names of the placeholders holding metric totals, for a step taking
        ``(trainable, non_trainable, metrics, ...)`` and returning its step layout."""
        arguments = self.in_spec
        if (
            self._step_layout is None
            or arguments.type is not tuple
            or arguments.num_children < 3
            or not all(c.type is list for c in arguments.children()[:3])
        ):
            return set()
        trainable, non_trainable, metrics = (c.num_children for c in arguments.children()[:3])
        if metrics != self._step_layout[1]:
            return set()
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        start = trainable + non_trainable
        return {n.target for n in placeholders[start : start + metrics]}

    def call_step(self, leaves: list) -> Any:
        """Runs the step on already flattened inputs; returns its outputs in their structure."""
        outputs = self.forward(*leaves)
        layout = self._step_layout
        if layout is None:
            if self.out_spec.is_leaf():
                return outputs[0]
            return ki.tree_unflatten(outputs, self.out_spec)
        non_trainable, metrics, keys = layout
        split = 1 + non_trainable
        end = split + metrics
        return outputs[0], outputs[1:split], outputs[split:end], dict(zip(keys, outputs[end:]))


def _step_layout(spec: Any) -> tuple[int, int, list] | None:
    """(non-trainable count, metric count, log keys) when a train/test step returns
    ``(loss, [tensors], [tensors], {name: tensor})``; None for any other structure."""
    if spec.type is not tuple or spec.num_children != 4:
        return None
    loss, non_trainable, metrics, logs = spec.children()
    if not (loss.is_leaf() and non_trainable.type is list and metrics.type is list and logs.type is dict):
        return None
    if not all(c.is_leaf() for c in non_trainable.children() + metrics.children() + logs.children()):
        return None
    return non_trainable.num_children, metrics.num_children, list(logs.context)
