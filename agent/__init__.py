"""The sync agent: delivers stored records to the central system and keeps settings in step."""
