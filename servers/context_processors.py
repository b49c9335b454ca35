def servers(request) -> dict:
    """The user's servers in error, for the badges on every page that shows them (one small query)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from servers.services import server_error_badges

    # A callable: the template calls it only where the badges are shown (no query on other pages).
    return {"server_errors": lambda: server_error_badges(user)}
