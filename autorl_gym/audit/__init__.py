"""Every score carries its evidence: the contamination audit of what an agent could have trained
on or sent out (:mod:`.run`) and the provenance stamp of a score (:mod:`.provenance`). The
episode runs both (:mod:`autorl_gym.episode.audit`); the report shows them and ``autorl-gym
verify`` re-checks a result (:mod:`autorl_gym.report.integrity`, :mod:`autorl_gym.report.verify`)."""
