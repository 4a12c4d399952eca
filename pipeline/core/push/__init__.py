"""Change events pushed over HTTP in other tools' formats, mapped to Sensu v2 events. Pure."""
