"""Feed formats: HL7 v2, FHIR R4, the CSV forms and clinical events read into raw records, then validated
and normalised (units, derived counts). Pure; imports only from ``monitor``.
"""
