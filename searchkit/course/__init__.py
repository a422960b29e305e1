"""The course's own parts: the checks behind every notebook exercise."""
