"""TF1 Hub modules (and plain TF1 SavedModels) as a BERT encoder: reading them and running them.

Model Maker's MobileBERT is such a module: `saved_model.pb` holding one graph per tag set (the
empty set for inference, `{"train"}` with dropout on), a `tokens` signature (inputs
`input_ids` / `input_mask` / `segment_ids`, outputs `pooled_output` / `sequence_output`),
usually a `tokenization_info` signature, `variables/` and `tfhub_module.pb`.

TF2 can load such a module (`tf.compat.v1.saved_model.load_v2`) and call its signatures, but
only variables that were saved as resource variables come back as Python objects: a module
written with TF1's default reference variables cannot be fine-tuned that way. So this module
does it differently: the signature's subgraph is imported, at trace time, into whatever graph
calls the layer (a training step, a serving function), with every variable read replaced by a
read of a Keras weight created from the checkpoint. The result trains like any Keras layer,
saves and restores with `save_weights`, picks the `train` graph when `training=True`, and
exports as plain ops, so the TFLite converter sees no TF1 machinery at all.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Optional, Sequence, Tuple

import tensorflow as tf
import tf_keras as keras

import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
from components.errors import EncoderError

HUB_MODULE_FILE = "tfhub_module.pb"
TOKENS_SIGNATURE = "tokens"
TOKENIZATION_SIGNATURE = "tokenization_info"
TRAIN_TAGS = ("train",)

# Our encoder input names -> the names TF1 BERT modules use for them (Model Maker's first).
INPUT_ALIASES = {"input_word_ids": ("input_ids", "input_word_ids"),
                 "input_mask": ("input_mask",),
                 "input_type_ids": ("segment_ids", "input_type_ids")}
OUTPUTS = ("pooled_output", "sequence_output")

_VARIABLE_OPS = ("VariableV2", "Variable", "VarHandleOp")
_VALUE_SUFFIX = "/textclf_value"


# --------------------------------------------------------------------------------------------
# Reading the SavedModel protocol buffer
# --------------------------------------------------------------------------------------------

def read_saved_model(path: str):
    """The SavedModel proto of the folder `path` (saved_model.pb or .pbtxt)."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    binary, text = os.path.join(path, "saved_model.pb"), os.path.join(path, "saved_model.pbtxt")
    proto = saved_model_pb2.SavedModel()
    try:
        if os.path.exists(binary):
            with open(binary, "rb") as f:
                proto.ParseFromString(f.read())
        else:
            with open(text, encoding="utf-8") as f:
                text_format.Parse(f.read(), proto)
    except Exception as e:  # protobuf raises DecodeError / ParseError, or OSError
        raise EncoderError(f"{path}: saved_model.pb is not a readable SavedModel ({e})") from e
    if not proto.meta_graphs:
        raise EncoderError(f"{path}: the SavedModel holds no graph")
    return proto


def is_tf1_format(path: str, saved_model=None) -> bool:
    """A TF1 Hub module, or any SavedModel written without TF2's object graph."""
    if os.path.exists(os.path.join(path, HUB_MODULE_FILE)):
        return True
    saved_model = saved_model or read_saved_model(path)
    return not any(len(m.object_graph_def.nodes) for m in saved_model.meta_graphs)


def _tags(meta_graph) -> Tuple[str, ...]:
    return tuple(sorted(meta_graph.meta_info_def.tags))


def meta_graph_for(saved_model, tags: Sequence[str], path: str):
    wanted = tuple(sorted(tags))
    for meta_graph in saved_model.meta_graphs:
        if _tags(meta_graph) == wanted:
            return meta_graph
    found = [list(_tags(m)) for m in saved_model.meta_graphs]
    raise EncoderError(f"{path}: no graph with tag set {list(wanted)}; the module has {found}")


def inference_tags(saved_model, path: str) -> List[str]:
    """The inference graph: the empty tag set (TF1 Hub), else `serve`, else the only graph."""
    available = [_tags(m) for m in saved_model.meta_graphs]
    for candidate in ((), ("serve",)):
        if candidate in available:
            return list(candidate)
    if len(available) == 1:
        return list(available[0])
    raise EncoderError(f"{path}: cannot tell which of the tag sets {[list(t) for t in available]} "
                       "is the inference graph (expected the empty set or 'serve')")


def train_tags(saved_model, inference: Sequence[str]) -> Optional[List[str]]:
    """The `train` tag set when the module has one besides the inference graph."""
    available = [_tags(m) for m in saved_model.meta_graphs]
    if TRAIN_TAGS in available and TRAIN_TAGS != tuple(sorted(inference)):
        return list(TRAIN_TAGS)
    return None


def _input_map(signature) -> Optional[Dict[str, str]]:
    """Our input names -> the signature's, or None when the signature lacks one of them."""
    mapping = {}
    for ours, theirs in INPUT_ALIASES.items():
        name = next((n for n in theirs if n in signature.inputs), None)
        if name is None:
            return None
        mapping[ours] = name
    return mapping


def _is_encoder_signature(signature) -> bool:
    return _input_map(signature) is not None and all(o in signature.outputs for o in OUTPUTS)


def choose_signature(meta_graph, path: str, preferred: str = TOKENS_SIGNATURE) -> str:
    """`tokens` when it fits, else the first signature with BERT's inputs and outputs."""
    signatures = meta_graph.signature_def
    if preferred in signatures and _is_encoder_signature(signatures[preferred]):
        return preferred
    for name in sorted(signatures):
        if _is_encoder_signature(signatures[name]):
            return name
    described = "; ".join(f"{name}({', '.join(sorted(s.inputs))}) -> {', '.join(sorted(s.outputs))}"
                          for name, s in sorted(signatures.items())) or "none"
    raise EncoderError(
        f"{path}: no signature takes BERT's inputs (input_ids or input_word_ids, input_mask, "
        f"segment_ids or input_type_ids) and returns {' and '.join(OUTPUTS)}; signatures: "
        f"{described}")


def _asset_files(path: str, meta_graph) -> Dict[str, str]:
    """Asset tensor name -> the file under `path/assets` it stands for (both TF1 encodings)."""
    from tensorflow.core.protobuf import meta_graph_pb2

    defs = list(meta_graph.asset_file_def)
    collection = meta_graph.collection_def.get("saved_model_assets")
    if collection is not None:
        for packed in collection.any_list.value:
            asset = meta_graph_pb2.AssetFileDef()
            packed.Unpack(asset)
            defs.append(asset)
    return {a.tensor_info.name: os.path.join(path, "assets", a.filename) for a in defs}


def _clean_nodes(graph_def):
    """Drops device placements and colocation hints that name nodes we remove or rename."""
    for node in graph_def.node:
        node.device = ""
        if "_class" in node.attr:
            del node.attr["_class"]
    return graph_def


def _node(tensor_name: str) -> str:
    return tensor_name.lstrip("^").split(":")[0]


def tokenization_info(path: str, meta_graph) -> Tuple[Optional[str], Optional[bool]]:
    """(vocab path, do_lower_case) from the `tokenization_info` signature, or (None, None).

    Evaluated in a session on the signature's subgraph alone, feeding asset tensors with their
    files' paths as TF1's loader does; no variable is restored.
    """
    signature = meta_graph.signature_def.get(TOKENIZATION_SIGNATURE)
    if signature is None:
        return None, None
    outputs = {k: v.name for k, v in signature.outputs.items()
               if k in ("vocab_file", "do_lower_case")}
    if not outputs:
        return None, None
    assets = _asset_files(path, meta_graph)
    try:
        sub = tf.compat.v1.graph_util.extract_sub_graph(
            meta_graph.graph_def, sorted({_node(t) for t in outputs.values()}))
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(_clean_nodes(sub), name="")
            feeds = {}
            for tensor_name, file_path in assets.items():
                try:
                    feeds[graph.get_tensor_by_name(tensor_name)] = file_path
                except (KeyError, ValueError):
                    continue  # an asset the tokenization signature does not use
            with tf.compat.v1.Session(graph=graph) as session:
                values = session.run({k: graph.get_tensor_by_name(v) for k, v in outputs.items()},
                                     feed_dict=feeds)
    except Exception as e:  # graph import and session errors come in many types
        raise EncoderError(f"{path}: could not evaluate the {TOKENIZATION_SIGNATURE} "
                           f"signature: {e}") from e
    vocab = values.get("vocab_file")
    if vocab is not None:
        vocab = vocab.decode("utf-8") if isinstance(vocab, bytes) else str(vocab)
        if not os.path.isabs(vocab):
            vocab = os.path.join(path, "assets", vocab)
        if not os.path.exists(vocab):
            raise EncoderError(f"{path}: {TOKENIZATION_SIGNATURE} names the vocabulary {vocab}, "
                               "which is not in the module")
    lower = values.get("do_lower_case")
    return vocab, (None if lower is None else bool(lower))


# --------------------------------------------------------------------------------------------
# Preparing a signature's subgraph for import
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class SignatureGraph:
    """A signature's subgraph whose variables are placeholders, ready for `import_graph_def`."""

    graph_def: object
    inputs: Dict[str, Tuple[str, tf.DType]]  # our input name -> (tensor name, dtype)
    outputs: Dict[str, str]                  # pooled_output / sequence_output -> tensor name
    variables: Dict[str, str]                # variable (checkpoint) name -> placeholder tensor


def _split_input(name: str) -> Tuple[str, str, bool]:
    control = name.startswith("^")
    bare = name.lstrip("^")
    node, _, port = bare.partition(":")
    return node, port or "0", control


def prepare_signature_graph(meta_graph, signature_name: str, path: str) -> SignatureGraph:
    """Cuts the signature's subgraph out and turns each variable into a value placeholder.

    A reference variable's consumers read the placeholder instead; a resource variable is read
    through ReadVariableOp (dropped, its consumers rewired to the placeholder) or ResourceGather
    (rewritten as GatherV2 on the placeholder). Any other op on a resource variable is refused.
    """
    from tensorflow.core.framework import graph_pb2, node_def_pb2

    signature = meta_graph.signature_def[signature_name]
    mapping = _input_map(signature)
    if mapping is None or not all(o in signature.outputs for o in OUTPUTS):
        raise EncoderError(f"{path}: signature {signature_name!r} lacks BERT's inputs or outputs")
    outputs = {o: signature.outputs[o].name for o in OUTPUTS}
    sub = tf.compat.v1.graph_util.extract_sub_graph(
        meta_graph.graph_def, sorted({_node(t) for t in outputs.values()}))
    nodes = {n.name: n for n in sub.node}
    variables = {name: n for name, n in nodes.items() if n.op in _VARIABLE_OPS}
    resource = {name for name, n in variables.items() if n.op == "VarHandleOp"}

    # Node outputs that now come from a value placeholder: "node:port" -> "placeholder:0".
    redirect = {f"{name}:0": name + _VALUE_SUFFIX for name in variables if name not in resource}
    dropped = set(variables)
    rewritten = []
    for node in sub.node:
        if node.name in variables:
            continue
        resource_inputs = [i for i in node.input if _split_input(i)[0] in resource
                           and not _split_input(i)[2]]
        if not resource_inputs:
            rewritten.append(node)
            continue
        var_name = _split_input(resource_inputs[0])[0]
        if node.op == "ReadVariableOp":
            redirect[f"{node.name}:0"] = var_name + _VALUE_SUFFIX
            dropped.add(node.name)
        elif node.op == "ResourceGather" and _split_input(node.input[0])[0] == var_name:
            gather = node_def_pb2.NodeDef(name=node.name, op="GatherV2")
            axis = node_def_pb2.NodeDef(name=node.name + "/textclf_axis", op="Const")
            axis.attr["dtype"].type = tf.int32.as_datatype_enum
            axis.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(0, tf.int32))
            gather.input.extend([var_name + _VALUE_SUFFIX, node.input[1], axis.name]
                                + [i for i in node.input[2:] if i.startswith("^")])
            gather.attr["Tparams"].type = node.attr["dtype"].type
            gather.attr["Tindices"].type = node.attr["Tindices"].type
            gather.attr["Taxis"].type = tf.int32.as_datatype_enum
            gather.attr["batch_dims"].i = node.attr["batch_dims"].i if "batch_dims" in node.attr else 0
            rewritten += [axis, gather]
        else:
            raise EncoderError(
                f"{path}: node {node.name!r} applies {node.op} to the variable {var_name!r}; "
                "only reads (ReadVariableOp, ResourceGather) can be imported")

    graph_def = graph_pb2.GraphDef()
    graph_def.versions.CopyFrom(sub.versions)
    graph_def.library.CopyFrom(sub.library)
    for name, node in sorted(variables.items()):
        placeholder = graph_def.node.add(name=name + _VALUE_SUFFIX, op="Placeholder")
        placeholder.attr["dtype"].type = node.attr["dtype"].type
    for node in rewritten:
        new_inputs = []
        for item in node.input:
            source, port, control = _split_input(item)
            target = redirect.get(f"{source}:{port}")
            if control:
                if source in variables:
                    new_inputs.append("^" + source + _VALUE_SUFFIX)
                elif source in dropped:
                    new_inputs.append("^" + _node(target))
                else:
                    new_inputs.append(item)
            else:
                new_inputs.append(target if target else item)
        node.ClearField("input")
        node.input.extend(new_inputs)
        graph_def.node.append(node)
    inputs = {ours: (signature.inputs[theirs].name,
                     tf.as_dtype(signature.inputs[theirs].dtype))
              for ours, theirs in mapping.items()}
    return SignatureGraph(_clean_nodes(graph_def), inputs,
                          {o: redirect[t] + ":0" if t in redirect else t
                           for o, t in outputs.items()},
                          {name: name + _VALUE_SUFFIX + ":0" for name in variables})


def trainable_names(meta_graphs) -> Optional[set]:
    """Variables in the TRAINABLE_VARIABLES collection, or None when no graph keeps one."""
    from tensorflow.core.framework import variable_pb2

    names, seen = set(), False
    for meta_graph in meta_graphs:
        collection = meta_graph.collection_def.get("trainable_variables")
        if collection is None:
            continue
        seen = True
        for raw in collection.bytes_list.value:
            names.add(_node(variable_pb2.VariableDef.FromString(raw).variable_name))
    return names if seen else None


def partitioned_variables(meta_graphs) -> List[str]:
    from tensorflow.core.framework import variable_pb2

    found = []
    for meta_graph in meta_graphs:
        collection = meta_graph.collection_def.get("variables")
        if collection is None:
            continue
        for raw in collection.bytes_list.value:
            definition = variable_pb2.VariableDef.FromString(raw)
            if definition.HasField("save_slice_info_def"):
                found.append(definition.save_slice_info_def.full_name)
    return sorted(set(found))


def max_positions(shapes: Dict[str, Sequence[int]]) -> Optional[int]:
    """Rows of the position-embedding table, when a variable is named like one."""
    for name, shape in shapes.items():
        if name.endswith("position_embeddings") and len(shape) == 2:
            return int(shape[0])
    return None


# --------------------------------------------------------------------------------------------
# The Keras layer
# --------------------------------------------------------------------------------------------

class _TraceCache:
    """Holds the layer's eager-mode tf.functions outside Keras' and SavedModel's tracking."""

    def __init__(self):
        self.functions = {}


@keras.saving.register_keras_serializable(package="textclf")
class TF1HubEncoder(keras.layers.Layer):
    """A TF1 Hub BERT module's signature as a trainable layer with the TF2 encoder interface.

    Called on `{input_word_ids, input_mask, input_type_ids}`, returns `pooled_output` and
    `sequence_output`. Weights are named as the module's variables and ordered by name, so
    `save_weights` / `load_weights` round-trip between two layers built from the same module.
    """

    def __init__(self, path: str, signature: str = TOKENS_SIGNATURE,
                 tags: Sequence[str] = (), train_tags: Optional[Sequence[str]] = None, **kwargs):
        super().__init__(**kwargs)
        self.path, self.signature = path, signature
        self.tags = list(tags)
        self.train_tags = None if train_tags is None else list(train_tags)
        saved_model = read_saved_model(path)
        inference = meta_graph_for(saved_model, self.tags, path)
        graphs = {False: prepare_signature_graph(inference, signature, path)}
        meta_graphs = [inference]
        if self.train_tags is not None:
            training = meta_graph_for(saved_model, self.train_tags, path)
            graphs[True] = prepare_signature_graph(training, signature, path)
            meta_graphs.append(training)
        else:
            graphs[True] = graphs[False]
        partitioned = partitioned_variables(meta_graphs)
        if partitioned:
            raise EncoderError(f"{path}: partitioned variables ({', '.join(partitioned[:3])}) "
                               "are not supported")
        self._graphs = graphs
        self._trainable_names = trainable_names(meta_graphs)
        self._variable_names = sorted(set(graphs[False].variables) | set(graphs[True].variables))
        self._cache = _TraceCache()

    def _checkpoint(self):
        prefix = os.path.join(self.path, "variables", "variables")
        try:
            return tf.train.load_checkpoint(prefix)
        except Exception as e:  # NotFoundError / DataLossError and others
            raise EncoderError(f"{self.path}: cannot read the module's variables at {prefix} "
                               f"({e})") from e

    def variable_shapes(self) -> Dict[str, List[int]]:
        shapes = self._checkpoint().get_variable_to_shape_map()
        return {name: shapes[name] for name in self._variable_names if name in shapes}

    def build(self, input_shape):
        reader = self._checkpoint()
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
        missing = [n for n in self._variable_names if n not in shapes]
        if missing:
            raise EncoderError(f"{self.path}: the checkpoint lacks {len(missing)} variable(s) the "
                               f"signature reads, e.g. {', '.join(missing[:3])}")
        values = {}
        for name in self._variable_names:
            trainable = self._trainable_names is None or name in self._trainable_names
            values[name] = self.add_weight(
                name=name, shape=shapes[name], dtype=dtypes[name], trainable=trainable,
                initializer=keras.initializers.Constant(reader.get_tensor(name)))
        # A plain dict (not tracked again): the weights are already the layer's own.
        self._cache.values = values
        super().build(input_shape)

    def _import(self, inputs, training: bool):
        graph = self._graphs[bool(training)]
        values = self._cache.values
        feed = {tensor: tf.cast(inputs[ours], dtype)
                for ours, (tensor, dtype) in graph.inputs.items()}
        feed.update({tensor: values[name].value() for name, tensor in graph.variables.items()})
        names = list(OUTPUTS)
        results = tf.graph_util.import_graph_def(
            graph.graph_def, input_map=feed, return_elements=[graph.outputs[n] for n in names],
            name="module")
        return dict(zip(names, results))

    def _function(self, training: bool):
        """The import wrapped in a tf.function, one per mode.

        Always called through it, even while a graph is being traced: a GradientTape records
        ops created by Python op wrappers, not ones `import_graph_def` adds, but it does record
        a function call, whose gradient TF derives from the function's graph.
        """
        function = self._cache.functions.get(training)
        if function is None:
            function = tf.function(lambda x: self._import(x, training), reduce_retracing=True)
            self._cache.functions[training] = function
        return function

    def call(self, inputs, training=None):
        inputs = {name: inputs[name] for name in INPUT_ALIASES}
        if training is None or isinstance(training, bool):
            return self._function(bool(training))(inputs)
        return tf.__internal__.smart_cond.smart_cond(
            training, lambda: self._function(True)(inputs), lambda: self._function(False)(inputs))

    def get_config(self):
        return {**super().get_config(), "path": self.path, "signature": self.signature,
                "tags": self.tags, "train_tags": self.train_tags}
