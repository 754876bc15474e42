from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from streams.live import access
        from streams.presence import receivers
        from streams.recordings import service as recordings

        receivers.connect()
        recordings.connect()
        access.connect()
