"""A research group's catalogue: gallery versions, enrolment, decisions, audit log, metadata."""
