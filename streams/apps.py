from django.apps import AppConfig


class StreamsConfig(AppConfig):
    name = "streams"

    def ready(self) -> None:
        from streams import receivers, recording_peaks, recordings

        receivers.connect()
        recordings.connect()
        recording_peaks.connect()
