"""The tests: by layer and feature; they may import anything, and speak as a user would notice."""
