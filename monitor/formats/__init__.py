"""Feed formats: HL7 v2, FHIR R4, the CSV forms and clinical events read into raw records, then validated
and normalised (units, derived counts). ``registry`` lists the formats, one entry each: a new format is one
module and one line there. Pure; imports only from ``monitor``.
"""
