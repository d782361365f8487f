# The texts use each language's typographic dashes and quotation marks on purpose.
# ruff: noqa: RUF001
"""Built-in texts of the enquiry acknowledgement, by language (ISO 639-1 code).

``{business}``, ``{form}`` and ``{name}`` are filled in by the composer, which escapes them
for the HTML part. A language missing here falls back to English.
"""

from __future__ import annotations

from typing import TypedDict


class AcknowledgementTexts(TypedDict):
    subject: str
    greeting: str
    greeting_named: str
    received: str
    reply: str
    automatic: str


ACKNOWLEDGEMENT_TEXTS: dict[str, AcknowledgementTexts] = {
    "en": {
        "subject": "We received your enquiry – {business}",
        "greeting": "Hello,",
        "greeting_named": "Hello {name},",
        "received": "Thank you for contacting {business}. We have received your enquiry "
        "sent through the form “{form}” and will get back to you as soon as possible.",
        "reply": "To add anything, reply to this email.",
        "automatic": "This message was sent automatically.",
    },
    "fr": {
        "subject": "Nous avons bien reçu votre demande – {business}",
        "greeting": "Bonjour,",
        "greeting_named": "Bonjour {name},",
        "received": "Merci d’avoir contacté {business}. Nous avons bien reçu votre demande "
        "envoyée via le formulaire « {form} » et nous vous répondrons dans les meilleurs délais.",
        "reply": "Pour ajouter une précision, répondez simplement à cet e-mail.",
        "automatic": "Ce message a été envoyé automatiquement.",
    },
    "de": {
        "subject": "Wir haben Ihre Anfrage erhalten – {business}",
        "greeting": "Guten Tag,",
        "greeting_named": "Hallo {name},",
        "received": "vielen Dank für Ihre Nachricht an {business}. Wir haben Ihre Anfrage über "
        "das Formular „{form}“ erhalten und melden uns so bald wie möglich bei Ihnen.",
        "reply": "Wenn Sie etwas ergänzen möchten, antworten Sie einfach auf diese E-Mail.",
        "automatic": "Diese Nachricht wurde automatisch versendet.",
    },
    "es": {
        "subject": "Hemos recibido su consulta – {business}",
        "greeting": "Hola:",
        "greeting_named": "Hola, {name}:",
        "received": "Gracias por ponerse en contacto con {business}. Hemos recibido su consulta "
        "enviada a través del formulario «{form}» y le responderemos lo antes posible.",
        "reply": "Si desea añadir algo, responda a este correo electrónico.",
        "automatic": "Este mensaje se ha enviado automáticamente.",
    },
    "nl": {
        "subject": "We hebben uw aanvraag ontvangen – {business}",
        "greeting": "Hallo,",
        "greeting_named": "Hallo {name},",
        "received": "Bedankt voor uw bericht aan {business}. We hebben uw aanvraag via het "
        "formulier ‘{form}’ ontvangen en nemen zo snel mogelijk contact met u op.",
        "reply": "Wilt u nog iets toevoegen? Beantwoord dan deze e-mail.",
        "automatic": "Dit bericht is automatisch verzonden.",
    },
    "pt": {
        "subject": "Recebemos o seu pedido – {business}",
        "greeting": "Olá,",
        "greeting_named": "Olá, {name},",
        "received": "Obrigado por contactar {business}. Recebemos o seu pedido enviado através "
        "do formulário «{form}» e responderemos o mais brevemente possível.",
        "reply": "Se quiser acrescentar alguma informação, basta responder a este e-mail.",
        "automatic": "Esta mensagem foi enviada automaticamente.",
    },
    "it": {
        "subject": "Abbiamo ricevuto la sua richiesta – {business}",
        "greeting": "Buongiorno,",
        "greeting_named": "Gentile {name},",
        "received": "Grazie per aver contattato {business}. Abbiamo ricevuto la sua richiesta "
        "inviata tramite il modulo «{form}» e le risponderemo il prima possibile.",
        "reply": "Per aggiungere altre informazioni, risponda a questa e-mail.",
        "automatic": "Questo messaggio è stato inviato automaticamente.",
    },
}


def acknowledgement_texts(language: str) -> tuple[str, AcknowledgementTexts]:
    """Return the language used and its texts: the primary subtag of ``language``, else English."""
    primary = (language or "").strip().replace("_", "-").split("-")[0].lower()
    if primary in ACKNOWLEDGEMENT_TEXTS:
        return primary, ACKNOWLEDGEMENT_TEXTS[primary]
    return "en", ACKNOWLEDGEMENT_TEXTS["en"]
