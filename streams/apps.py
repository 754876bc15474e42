from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from streams import receivers, recordings

        receivers.connect()
        recordings.connect()
