"""The parts of TensorFlow's and Keras' SavedModel protos that the structure tier reads, declared for protobuf.

TensorFlow's generated modules cannot be imported without importing TensorFlow, so the few messages needed are
declared here with their field numbers from ``tensorflow/core/protobuf/{saved_model,meta_graph,
saved_object_graph,trackable_object_graph}.proto``, ``tensor_shape.proto`` and tf-keras'
``protobuf/saved_metadata.proto``. protobuf skips every field not declared (the graph's functions, signatures),
so nothing else in the file is interpreted.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

_INT32, _INT64, _BOOL, _STRING, _MESSAGE, _ENUM_AS_INT = 5, 3, 8, 9, 11, 5
_OPTIONAL, _REPEATED = 1, 3
_PACKAGE = "keras_explorer.saved_model"

# message -> (field name, number, type, label, message type)
_MESSAGES: dict[str, tuple[tuple[str, int, int, int, str], ...]] = {
    # tf-keras saved_metadata.proto
    "KerasMetadata": (("nodes", 1, _MESSAGE, _REPEATED, "KerasObject"),),
    "KerasObject": (("node_id", 2, _INT32, _OPTIONAL, ""), ("node_path", 3, _STRING, _OPTIONAL, ""),
                    ("identifier", 4, _STRING, _OPTIONAL, ""), ("metadata", 5, _STRING, _OPTIONAL, "")),
    # tensorflow saved_model.proto / meta_graph.proto / saved_object_graph.proto
    "SavedModel": (("meta_graphs", 2, _MESSAGE, _REPEATED, "MetaGraphDef"),),
    "MetaGraphDef": (("object_graph_def", 7, _MESSAGE, _OPTIONAL, "SavedObjectGraph"),),
    "SavedObjectGraph": (("nodes", 1, _MESSAGE, _REPEATED, "SavedObject"),),
    "SavedObject": (("children", 1, _MESSAGE, _REPEATED, "ObjectReference"),
                    ("variable", 7, _MESSAGE, _OPTIONAL, "SavedVariable")),
    "ObjectReference": (("node_id", 1, _INT32, _OPTIONAL, ""), ("local_name", 2, _STRING, _OPTIONAL, "")),
    "SavedVariable": (("dtype", 1, _ENUM_AS_INT, _OPTIONAL, ""), ("shape", 2, _MESSAGE, _OPTIONAL, "TensorShape"),
                      ("trainable", 3, _BOOL, _OPTIONAL, ""), ("name", 6, _STRING, _OPTIONAL, "")),
    "TensorShape": (("dim", 2, _MESSAGE, _REPEATED, "Dim"), ("unknown_rank", 3, _BOOL, _OPTIONAL, "")),
    "Dim": (("size", 1, _INT64, _OPTIONAL, ""),),
}
# tensorflow/core/framework/types.proto DataType values -> numpy's names
DTYPES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string", 9: "int64",
          10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 22: "uint32", 23: "uint64"}


def _classes() -> dict[str, type[Message]]:
    # proto2 syntax: DataType is an open enum in TensorFlow; read as int32 (same wire encoding, no enum check).
    file = descriptor_pb2.FileDescriptorProto(name="keras_explorer_saved_model.proto", package=_PACKAGE)
    for message_name, fields in _MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind, label, type_name in fields:
            field = message.field.add(name=name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{_PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _MESSAGES}


_CLASSES = _classes()
KerasMetadata = _CLASSES["KerasMetadata"]
SavedModel = _CLASSES["SavedModel"]
