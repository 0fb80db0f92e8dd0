"""Every score carries its evidence: the contamination audit of what an agent could have trained
on or sent out (:mod:`.run`), the provenance stamp of a score (:mod:`.provenance`) and
``autorl-gym verify`` (:mod:`.verify`)."""
