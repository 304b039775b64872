"""The webhook receiver: GitHub deliveries and dockercise events -> typed events for the bot.

`verify`, `events` and `errors` are pure (no Flask); `app.create_app` builds
the Flask app around them.
"""
