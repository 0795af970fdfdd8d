"""Validate JSON texts against a JSON schema with the `jsonschema` package: reads
{"schema": ..., "outputs": [text, ...]} on stdin, writes {"valid": n, "failures": [...]}."""

import json
import sys

import jsonschema


def main():
    req = json.load(sys.stdin)
    validator = jsonschema.Draft202012Validator(req["schema"])
    valid, failures = 0, []
    for text in req["outputs"]:
        try:
            validator.validate(json.loads(text))
            valid += 1
        except (json.JSONDecodeError, jsonschema.ValidationError) as e:
            failures.append({"text": text, "why": str(e).splitlines()[0]})
    json.dump({"valid": valid, "failures": failures}, sys.stdout)


if __name__ == "__main__":
    main()
