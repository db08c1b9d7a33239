#!/usr/bin/env python3
"""A real SOAP client (zeep) for the switch's SOAP services, driven by tests/soap.rs.

    soap_client.py --wsdl URL STEP [STEP ...]

zeep loads the WSDL from URL and then calls the service at the address the WSDL gives
(`soap:address`), as any generated client would. Each STEP is a JSON object naming an
operation of IntelligentRoutingServiceImpl (interface 61) and its parameters:

    {"op": "addIntelligentRoutingRule", "ruleRoutingRule": {...}}
    {"op": "deleteIntelligentRoutingRule", "id": 3}
    {"op": "getAllIntelligentRouting"}
    {"op": "updateIntelligentRoutingRule", "ruleRoutingRule": {...}}

Prints one JSON object on stdout:

    {"address": "<soap:address zeep posts to>",
     "results": [{"ok": <result as plain JSON>} | {"fault": {"code": ..., "message": ...}}, ...]}

A SOAP fault is a result, not an error; anything else (the WSDL does not load, a transport
error, a reply zeep cannot read) ends the script with status 1 and the error on stderr.
"""

import argparse
import json
import sys

import zeep
import zeep.exceptions
import zeep.helpers
from zeep.transports import Transport


def plain(value):
    """zeep's result objects as JSON-able values."""
    value = zeep.helpers.serialize_object(value, dict)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wsdl", required=True)
    parser.add_argument("steps", nargs="*")
    args = parser.parse_args()

    client = zeep.Client(args.wsdl, transport=Transport(timeout=10, operation_timeout=10))
    address = client.service._binding_options.get("address")
    results = []
    for raw in args.steps:
        step = json.loads(raw)
        op = step.pop("op")
        try:
            results.append({"ok": plain(getattr(client.service, op)(**step))})
        except zeep.exceptions.Fault as fault:
            results.append({"fault": {"code": fault.code, "message": fault.message}})
    json.dump({"address": address, "results": results}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report any failure to the Rust test
        print(f"soap_client: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
