"""A stand-in for TensorFlow Serving in tests: serves a SavedModel on 127.0.0.1 over
TF Serving's REST API and its gRPC PredictionService, by calling the signatures.

No tensorflow_model_server binary is available where these tests run. The double
copies the server's behaviour where a client depends on it: the URL scheme, row
and columnar JSON for one input or several named ones, the JSON types each dtype
takes (a number for a float, an integer for an int64, a string or {"b64": ...}
for a string), the metadata JSON, HTTP 400/404 with {"error": ...}, gRPC
INVALID_ARGUMENT/NOT_FOUND, and the latest version served.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import threading
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    model_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

DEFAULT_SIGNATURE = "serving_default"
SIGNATURE_DEF_FIELD = "signature_def"
# TF Serving sends string outputs whose name ends so as {"b64": ...}.
BINARY_OUTPUT_SUFFIX = "_bytes"
LOOPBACK = "127.0.0.1"

_PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict")
_MODEL_PATH = re.compile(r"/v1/models/([^/:]+)(?:/versions/(\d+))?(/metadata)?")


class ServingError(Exception):
    """A refusal, with the gRPC code TF Serving would give and its HTTP status."""

    HTTP_STATUS = {
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.UNIMPLEMENTED: 501,
    }

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return self.HTTP_STATUS.get(self.code, 500)


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


class ServedModel:
    """The highest integer version under a model base path, as TF Serving's
    default version policy serves it, loaded once."""

    def __init__(self, model_name: str, base_path: str):
        versions = sorted(
            int(name)
            for name in os.listdir(base_path)
            if name.isdigit() and os.path.isdir(os.path.join(base_path, name))
        )
        if not versions:
            raise FileNotFoundError(f"{base_path}: no integer version folder")
        self.name = model_name
        self.version = versions[-1]
        model_dir = os.path.join(base_path, str(self.version))
        self.loaded = tf.saved_model.load(model_dir)
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(model_dir, "saved_model.pb"), "rb") as stream:
            saved_model.ParseFromString(stream.read())
        # The SignatureDefs as TF Serving reads them, internal ones included.
        self.signature_defs = saved_model.meta_graphs[0].signature_def

    def check_servable(self, model_name: str, version: int | None) -> None:
        if model_name == self.name and version in (None, self.version):
            return
        request = (
            f"Latest({model_name})"
            if version is None
            else f"Specific({model_name}, {version})"
        )
        raise ServingError(
            grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {request}"
        )

    def model_spec(self, signature_name: str = "") -> model_pb2.ModelSpec:
        spec = model_pb2.ModelSpec(name=self.name, signature_name=signature_name)
        spec.version.value = self.version
        return spec

    def signature_def_map(self) -> get_model_metadata_pb2.SignatureDefMap:
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature_def in self.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature_def)
        return signature_map

    def input_infos(self, signature_name: str):
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs or name not in self.loaded.signatures:
            raise _invalid(
                f'Serving signature name: "{name}" not found in signature def'
            )
        return name, self.signature_defs[name].inputs

    def predict(
        self, signature_name: str, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Runs a signature on arrays already in the declared dtypes."""
        name, infos = self.input_infos(signature_name)
        unknown = sorted(set(inputs) - set(infos))
        if unknown:
            raise _invalid(
                f"input tensor alias not found in signature: {', '.join(unknown)}. "
                f"Inputs expected to be in the set {{{','.join(sorted(infos))}}}."
            )
        missing = sorted(set(infos) - set(inputs))
        if missing:
            raise _invalid(
                f"Request inputs do not match required inputs for model "
                f"`{self.name}`. Missing inputs: {', '.join(missing)}."
            )
        tensors = {}
        for index, (key, value) in enumerate(sorted(inputs.items())):
            expected = tf.dtypes.as_dtype(infos[key].dtype)
            given = tf.dtypes.as_dtype(value.dtype)
            if given != expected:
                raise _invalid(
                    f"Expects arg[{index}] to be {expected.name} but {given.name} "
                    "is provided"
                )
            tensors[key] = tf.constant(value, expected)
        try:
            outputs = self.loaded.signatures[name](**tensors)
        except tf.errors.InvalidArgumentError as error:
            raise _invalid(error.message) from error
        except (TypeError, ValueError) as error:
            raise _invalid(str(error)) from error
        return {key: tensor.numpy() for key, tensor in outputs.items()}


# ---------------------------------------------------------------------------
# REST


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _json_type(value) -> str:
    """The JSON type of a value, named as TF Serving's messages name it."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    return "Array" if isinstance(value, list) else "Object"


def _type_error(value, dtype: tf.dtypes.DType) -> ServingError:
    return _invalid(
        f"JSON Value: {json.dumps(value)} Type: {_json_type(value)} is not of "
        f"expected type: {dtype.name}"
    )


def _check_leaf(value, dtype: tf.dtypes.DType) -> None:
    """Refuses a JSON value the tensor's dtype cannot hold, as TF Serving does:
    a float takes any number, an integer only a JSON integer, a string only a
    string or {"b64": ...}; nothing is converted from a string or a bool."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if dtype == tf.string:
        ok = isinstance(value, str) or _is_b64(value)
    elif dtype == tf.bool:
        ok = isinstance(value, bool)
    elif dtype.is_floating:
        ok = is_number
    elif dtype.is_integer:
        ok = is_number and isinstance(value, int)
    else:
        raise ServingError(
            grpc.StatusCode.UNIMPLEMENTED,
            f"Conversion of JSON Value: {json.dumps(value)} to type: {dtype.name}",
        )
    if not ok:
        raise _type_error(value, dtype)


def _check_values(value, dtype: tf.dtypes.DType) -> None:
    if isinstance(value, list):
        for item in value:
            _check_values(item, dtype)
    else:
        _check_leaf(value, dtype)


def _decode_strings(value):
    """JSON strings and {"b64": ...} objects, nested in lists, as bytes."""
    if isinstance(value, dict):
        if not _is_b64(value):
            raise _invalid(f'expected a string or {{"b64": ...}}, got {value}')
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:
            raise _invalid(f"Unable to base64 decode: {error}") from error
    if isinstance(value, list):
        return [_decode_strings(item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    raise _invalid(f"expected a string value, got {json.dumps(value)[:80]}")


def _json_to_array(value, info) -> np.ndarray:
    dtype = tf.dtypes.as_dtype(info.dtype)
    _check_values(value, dtype)
    if dtype == tf.string:
        return np.array(_decode_strings(value), dtype=object)
    try:
        return np.asarray(value, dtype=dtype.as_numpy_dtype)
    except (TypeError, ValueError) as error:
        raise _invalid(
            f"cannot read the JSON value as a tensor of {dtype.name}: {error}"
        ) from error


def _is_named_object(value) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _row_columns(instances: list, infos) -> dict[str, list]:
    """The row format's instances as one list per input, checked as TF Serving
    checks them: all objects naming every input exactly once, or all plain
    values when the signature has one input."""
    names = sorted(infos)
    if not _is_named_object(instances[0]):
        if len(names) > 1:
            raise _invalid(
                "instances is a plain list, but expecting list of objects as "
                "multiple input tensors required as per tensorinfo_map"
            )
        for index, row in enumerate(instances):
            if _is_named_object(row):
                raise _invalid(
                    f"Expecting value/list but got object at item {index} of input list"
                )
        return {names[0]: instances}
    for index, row in enumerate(instances):
        if not _is_named_object(row):
            raise _invalid(
                f"Expecting object but got list at item {index} of input list"
            )
        for key, value in row.items():
            try:
                if key not in infos:
                    raise _invalid(f"JSON object: does not have named input: {key}")
                _check_values(value, tf.dtypes.as_dtype(infos[key].dtype))
            except ServingError as error:
                raise _invalid(
                    f"Failed to process element: {index} key: {key} of "
                    f"'instances' list. Error: {error.message}"
                ) from error
        if sorted(row) != names:
            raise _invalid(
                f"Failed to process element: {index} of 'instances' list. JSON "
                f"object: {json.dumps(row)} keys must be equal to: {','.join(names)}"
            )
    return {name: [row[name] for row in instances] for name in names}


def _array_to_json(name: str, array: np.ndarray):
    if array.dtype == object or array.dtype.kind == "S":
        binary = name.endswith(BINARY_OUTPUT_SUFFIX)
        flat = [
            {"b64": base64.b64encode(item).decode("ascii")}
            if binary
            else item.decode("utf-8", "replace")
            for item in array.ravel()
        ]
        return np.array(flat, dtype=object).reshape(array.shape).tolist()
    return array.tolist()


def rest_predict(model: ServedModel, body: dict) -> dict:
    """One :predict request body in, the response body out, as TF Serving does."""
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise _invalid(
            "Missing 'inputs' or 'instances' key"
            if "instances" not in body
            else "Not both 'inputs' and 'instances' can be specified"
        )
    signature_name, infos = model.input_infos(body.get("signature_name", ""))
    names = sorted(infos)
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise _invalid("'instances' must be a non-empty JSON list")
        columns = _row_columns(instances, infos)
    else:
        inputs = body["inputs"]
        if _is_named_object(inputs):
            # Keys that name no input are ignored, as by TF Serving.
            missing = [name for name in names if name not in inputs]
            if missing:
                raise _invalid(f"Missing named input: {missing[0]} in 'inputs' object.")
            columns = {name: inputs[name] for name in names}
        elif len(names) == 1:
            columns = {names[0]: inputs}
        else:
            raise _invalid(
                "inputs is a plain value/list, but expecting an object as multiple "
                "input tensors required as per tensorinfo_map"
            )
    arrays = {
        name: _json_to_array(value, infos[name]) for name, value in columns.items()
    }
    outputs = model.predict(signature_name, arrays)
    if "inputs" in body:
        if len(outputs) == 1:
            ((name, array),) = outputs.items()
            return {"outputs": _array_to_json(name, array)}
        return {
            "outputs": {
                name: _array_to_json(name, array) for name, array in outputs.items()
            }
        }
    sizes = {len(array) if array.ndim else None for array in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise _invalid(
            "Tensor name outputs have inconsistent batch size; use the "
            "columnar format ('inputs') instead"
        )
    as_json = {name: _array_to_json(name, array) for name, array in outputs.items()}
    if len(as_json) == 1:
        return {"predictions": next(iter(as_json.values()))}
    (size,) = sizes
    return {
        "predictions": [
            {name: values[row] for name, values in as_json.items()}
            for row in range(size)
        ]
    }


def _proto_json(message) -> dict:
    # As TF Serving prints metadata: proto field names, default values shown.
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        including_default_value_fields=True,
    )


def rest_metadata(model: ServedModel) -> dict:
    return {
        "model_spec": _proto_json(model.model_spec()),
        "metadata": {SIGNATURE_DEF_FIELD: _proto_json(model.signature_def_map())},
    }


def rest_status(model: ServedModel) -> dict:
    return {
        "model_version_status": [
            {
                "version": str(model.version),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def _make_rest_handler(double: TFServingDouble):
    class RestHandler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):
            # Test output stays readable; the double's `requests` records calls.
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            double.requests.append(("rest", method, self.path))
            try:
                self._answer(200, self._route(method))
            except ServingError as error:
                self._answer(error.http_status, {"error": error.message})

        def _route(self, method: str) -> dict:
            model = double.model
            if method == "POST":
                match = _PREDICT_PATH.fullmatch(self.path)
                if match is None:
                    raise _invalid(f"Malformed request: POST {self.path}")
                version = int(match.group(2)) if match.group(2) else None
                model.check_servable(match.group(1), version)
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length) or b"null")
                except ValueError as error:
                    raise _invalid(f"JSON Parse error: {error}") from error
                double.rest_bodies.append(body)
                return rest_predict(model, body)
            match = _MODEL_PATH.fullmatch(self.path)
            if match is None:
                raise _invalid(f"Malformed request: GET {self.path}")
            version = int(match.group(2)) if match.group(2) else None
            model.check_servable(match.group(1), version)
            return rest_metadata(model) if match.group(3) else rest_status(model)

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

    return RestHandler


# ---------------------------------------------------------------------------
# gRPC


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, double: TFServingDouble):
        self._double = double

    def _check(self, model_spec, context) -> ServedModel:
        model = self._double.model
        version = model_spec.version.value if model_spec.HasField("version") else None
        try:
            model.check_servable(model_spec.name, version)
        except ServingError as error:
            context.abort(error.code, error.message)
        return model

    def GetModelMetadata(self, request, context):
        self._double.requests.append(
            ("grpc", "GetModelMetadata", request.model_spec.name)
        )
        model = self._check(request.model_spec, context)
        if not request.metadata_field:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Metadata field {field} is not supported",
                )
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=model.model_spec()
        )
        response.metadata[SIGNATURE_DEF_FIELD].Pack(model.signature_def_map())
        return response

    def Predict(self, request, context):
        self._double.requests.append(("grpc", "Predict", request.model_spec.name))
        model = self._check(request.model_spec, context)
        inputs = {
            name: tf.make_ndarray(proto) for name, proto in request.inputs.items()
        }
        try:
            signature_name, _ = model.input_infos(request.model_spec.signature_name)
            outputs = model.predict(signature_name, inputs)
        except ServingError as error:
            context.abort(error.code, error.message)
        response = predict_pb2.PredictResponse(
            model_spec=model.model_spec(signature_name)
        )
        for name, array in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(array))
        return response


# ---------------------------------------------------------------------------
# Both servers


class TFServingDouble:
    """REST and gRPC on ephemeral loopback ports; use as a context manager.

    `requests` records every call in arrival order: ("rest", method, path) or
    ("grpc", method, model name); `rest_bodies` the JSON body of every REST
    :predict request that could be parsed.
    """

    def __init__(self, model_name: str, base_path: str):
        self.model = ServedModel(model_name, base_path)
        self.requests: list[tuple[str, str, str]] = []
        self.rest_bodies: list = []
        self._http = http.server.ThreadingHTTPServer(
            (LOOPBACK, 0), _make_rest_handler(self)
        )
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, name="tf-serving-double-rest", daemon=True
        )
        # TF Serving takes messages of any size; gRPC's default is 4 MB.
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            options=[("grpc.max_receive_message_length", -1)],
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self._grpc
        )
        self.grpc_port = self._grpc.add_insecure_port(f"{LOOPBACK}:0")

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self._http.server_address[1]}"

    @property
    def grpc_address(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    def start(self) -> TFServingDouble:
        self._http_thread.start()
        self._grpc.start()
        return self

    def stop(self) -> None:
        self._grpc.stop(grace=None).wait()
        self._http.shutdown()
        self._http.server_close()
        self._http_thread.join()

    def __enter__(self) -> TFServingDouble:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
