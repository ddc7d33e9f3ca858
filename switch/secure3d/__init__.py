"""3-D Secure 1 and 2 of the switch: the service, its sessions, the directory server's port, its config."""

from switch.secure3d.config import Secure3DConfig
from switch.secure3d.model import (
    BROWSER_FIELDS,
    Callbacks,
    Challenge,
    Completion,
    Form3d,
    MethodStep,
    Secure3DRequest,
)
from switch.secure3d.ports import DirectoryError, DirectoryPort, Enrolment, Support
from switch.secure3d.service import AlreadyCompleted, Secure3D

__all__ = [
    "BROWSER_FIELDS",
    "AlreadyCompleted",
    "Callbacks",
    "Challenge",
    "Completion",
    "DirectoryError",
    "DirectoryPort",
    "Enrolment",
    "Form3d",
    "MethodStep",
    "Secure3D",
    "Secure3DConfig",
    "Secure3DRequest",
    "Support",
]
