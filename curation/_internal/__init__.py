"""Private helpers shared by several subpackages."""
