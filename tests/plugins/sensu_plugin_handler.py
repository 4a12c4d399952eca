#!/usr/bin/env python3
"""A handler written the way sensu-plugin users write them: a SensuHandler subclass.

It appends what it reads from ``self.event`` to the file named by its first argument.
"""

import json

from sensu_plugin import SensuHandler


class RecordingHandler(SensuHandler):
    def handle(self) -> None:
        event = self.event
        record = {
            "entity": event["entity"]["metadata"]["name"],
            "check": event["check"]["metadata"]["name"],
            "status": event["check"]["status"],
            "output": event["check"]["output"],
            "occurrences": event["check"]["occurrences"],
        }
        with open(self.remain[0], "a") as out:
            out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    RecordingHandler()
