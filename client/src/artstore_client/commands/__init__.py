"""The client commands of `artstore`: each module parses options and hands over to the SDK."""
