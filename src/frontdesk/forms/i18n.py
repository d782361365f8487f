# The texts use each language's typographic apostrophes on purpose.
# ruff: noqa: RUF001
"""Built-in texts of the public form pages and of submission errors, by language.

A form's ``language`` is an ISO 639-1 code with an optional region ("pt-BR"); the texts are
chosen by the primary code. Error messages take ``{min}`` and ``{max}`` placeholders.
"""

from __future__ import annotations

import re
from typing import Final

TEXTS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "submit": "Send",
        "required_note": "Fields marked * are required.",
        "required": "required",
        "error_summary": "Please correct the following:",
        "honeypot_label": "Leave this field empty",
        "thanks_title": "Thank you",
        "thanks_message": "We have received your message and will get back to you soon.",
        "not_found_title": "Form not available",
        "not_found_message": "This form does not exist or no longer accepts answers.",
        "rate_limited_title": "Too many submissions",
        "rate_limited_message": "Please wait {minutes} minutes, then try again.",
        "error.required": "This field is required.",
        "error.invalid_email": "Enter a valid email address, like name@example.com.",
        "error.invalid_phone": "Enter a valid phone number, with the country code if it is abroad.",
        "error.invalid_number": "Enter a number.",
        "error.invalid_date": "Enter a date as YYYY-MM-DD.",
        "error.invalid_choice": "Choose one of the options given.",
        "error.invalid_type": "This value has the wrong type.",
        "error.boolean_type": "Send true or false.",
        "error.too_short": "Enter at least {min} characters.",
        "error.too_long": "Enter at most {max} characters.",
        "error.too_small": "Enter a number of at least {min}.",
        "error.too_large": "Enter a number of at most {max}.",
        "error.pattern_mismatch": "This value does not have the expected format.",
        "error.consent_required": "Your consent is needed to send this form.",
        "error.unknown_field": "This form has no such field.",
        "error.too_many_files": "Attach at most {max} files.",
        "error.upload_invalid": "This upload is invalid or has expired; attach the file again.",
        "error.file_type": "This type of file is not accepted; attach one of: {types}.",
        "error.file_too_large": "This file is too large; attach a file of at most {max}.",
    },
    "fr": {
        "submit": "Envoyer",
        "required_note": "Les champs marqués d’un * sont obligatoires.",
        "required": "obligatoire",
        "error_summary": "Veuillez corriger les points suivants :",
        "honeypot_label": "Laissez ce champ vide",
        "thanks_title": "Merci",
        "thanks_message": "Nous avons bien reçu votre message et vous répondrons rapidement.",
        "not_found_title": "Formulaire indisponible",
        "not_found_message": "Ce formulaire n’existe pas ou n’accepte plus de réponses.",
        "rate_limited_title": "Trop d’envois",
        "rate_limited_message": "Veuillez patienter {minutes} minutes, puis réessayer.",
        "error.required": "Ce champ est obligatoire.",
        "error.invalid_email": "Saisissez une adresse e-mail valide, comme nom@exemple.fr.",
        "error.invalid_phone": "Saisissez un numéro de téléphone valide, avec l’indicatif du pays s’il est à l’étranger.",
        "error.invalid_number": "Saisissez un nombre.",
        "error.invalid_date": "Saisissez une date au format AAAA-MM-JJ.",
        "error.invalid_choice": "Choisissez l’une des options proposées.",
        "error.invalid_type": "Cette valeur n’a pas le bon type.",
        "error.boolean_type": "Envoyez true ou false.",
        "error.too_short": "Saisissez au moins {min} caractères.",
        "error.too_long": "Saisissez au plus {max} caractères.",
        "error.too_small": "Saisissez un nombre supérieur ou égal à {min}.",
        "error.too_large": "Saisissez un nombre inférieur ou égal à {max}.",
        "error.pattern_mismatch": "Cette valeur n’a pas le format attendu.",
        "error.consent_required": "Votre consentement est nécessaire pour envoyer ce formulaire.",
        "error.unknown_field": "Ce formulaire n’a pas ce champ.",
        "error.too_many_files": "Joignez au plus {max} fichiers.",
        "error.upload_invalid": "Ce fichier envoyé n’est pas valide ou a expiré ; joignez-le à nouveau.",
        "error.file_type": "Ce type de fichier n’est pas accepté ; joignez l’un de ces types : {types}.",
        "error.file_too_large": "Ce fichier est trop volumineux ; joignez un fichier d’au plus {max}.",
    },
    "de": {
        "submit": "Senden",
        "required_note": "Mit * markierte Felder sind Pflichtfelder.",
        "required": "Pflichtfeld",
        "error_summary": "Bitte korrigieren Sie Folgendes:",
        "honeypot_label": "Dieses Feld bitte leer lassen",
        "thanks_title": "Vielen Dank",
        "thanks_message": "Wir haben Ihre Nachricht erhalten und melden uns bald bei Ihnen.",
        "not_found_title": "Formular nicht verfügbar",
        "not_found_message": "Dieses Formular gibt es nicht oder es nimmt keine Antworten mehr an.",
        "rate_limited_title": "Zu viele Einsendungen",
        "rate_limited_message": "Bitte warten Sie {minutes} Minuten und versuchen Sie es dann erneut.",
        "error.required": "Dieses Feld ist ein Pflichtfeld.",
        "error.invalid_email": "Geben Sie eine gültige E-Mail-Adresse ein, z. B. name@beispiel.de.",
        "error.invalid_phone": "Geben Sie eine gültige Telefonnummer ein, bei Auslandsnummern mit Ländervorwahl.",
        "error.invalid_number": "Geben Sie eine Zahl ein.",
        "error.invalid_date": "Geben Sie ein Datum im Format JJJJ-MM-TT ein.",
        "error.invalid_choice": "Wählen Sie eine der angebotenen Optionen.",
        "error.invalid_type": "Dieser Wert hat den falschen Typ.",
        "error.boolean_type": "Senden Sie true oder false.",
        "error.too_short": "Geben Sie mindestens {min} Zeichen ein.",
        "error.too_long": "Geben Sie höchstens {max} Zeichen ein.",
        "error.too_small": "Geben Sie eine Zahl von mindestens {min} ein.",
        "error.too_large": "Geben Sie eine Zahl von höchstens {max} ein.",
        "error.pattern_mismatch": "Dieser Wert hat nicht das erwartete Format.",
        "error.consent_required": "Ihre Einwilligung ist nötig, um dieses Formular zu senden.",
        "error.unknown_field": "Dieses Formular hat kein solches Feld.",
        "error.too_many_files": "Hängen Sie höchstens {max} Dateien an.",
        "error.upload_invalid": "Dieser Upload ist ungültig oder abgelaufen; hängen Sie die Datei erneut an.",
        "error.file_type": "Dieser Dateityp wird nicht angenommen; hängen Sie einen dieser Typen an: {types}.",
        "error.file_too_large": "Diese Datei ist zu groß; hängen Sie eine Datei mit höchstens {max} an.",
    },
    "es": {
        "submit": "Enviar",
        "required_note": "Los campos marcados con * son obligatorios.",
        "required": "obligatorio",
        "error_summary": "Corrija lo siguiente:",
        "honeypot_label": "Deje este campo vacío",
        "thanks_title": "Gracias",
        "thanks_message": "Hemos recibido su mensaje y le responderemos pronto.",
        "not_found_title": "Formulario no disponible",
        "not_found_message": "Este formulario no existe o ya no acepta respuestas.",
        "rate_limited_title": "Demasiados envíos",
        "rate_limited_message": "Espere {minutes} minutos y vuelva a intentarlo.",
        "error.required": "Este campo es obligatorio.",
        "error.invalid_email": "Introduzca un correo electrónico válido, como nombre@ejemplo.es.",
        "error.invalid_phone": "Introduzca un número de teléfono válido, con el prefijo del país si es del extranjero.",
        "error.invalid_number": "Introduzca un número.",
        "error.invalid_date": "Introduzca una fecha con el formato AAAA-MM-DD.",
        "error.invalid_choice": "Elija una de las opciones ofrecidas.",
        "error.invalid_type": "Este valor tiene un tipo incorrecto.",
        "error.boolean_type": "Envíe true o false.",
        "error.too_short": "Introduzca al menos {min} caracteres.",
        "error.too_long": "Introduzca como máximo {max} caracteres.",
        "error.too_small": "Introduzca un número mayor o igual que {min}.",
        "error.too_large": "Introduzca un número menor o igual que {max}.",
        "error.pattern_mismatch": "Este valor no tiene el formato esperado.",
        "error.consent_required": "Necesitamos su consentimiento para enviar este formulario.",
        "error.unknown_field": "Este formulario no tiene ese campo.",
        "error.too_many_files": "Adjunte como máximo {max} archivos.",
        "error.upload_invalid": "Esta subida no es válida o ha caducado; adjunte el archivo de nuevo.",
        "error.file_type": "Este tipo de archivo no se acepta; adjunte uno de estos tipos: {types}.",
        "error.file_too_large": "Este archivo es demasiado grande; adjunte un archivo de {max} como máximo.",
    },
    "nl": {
        "submit": "Versturen",
        "required_note": "Velden met een * zijn verplicht.",
        "required": "verplicht",
        "error_summary": "Corrigeer het volgende:",
        "honeypot_label": "Laat dit veld leeg",
        "thanks_title": "Bedankt",
        "thanks_message": "We hebben uw bericht ontvangen en nemen snel contact met u op.",
        "not_found_title": "Formulier niet beschikbaar",
        "not_found_message": "Dit formulier bestaat niet of neemt geen antwoorden meer aan.",
        "rate_limited_title": "Te veel inzendingen",
        "rate_limited_message": "Wacht {minutes} minuten en probeer het dan opnieuw.",
        "error.required": "Dit veld is verplicht.",
        "error.invalid_email": "Vul een geldig e-mailadres in, zoals naam@voorbeeld.nl.",
        "error.invalid_phone": "Vul een geldig telefoonnummer in, met landcode als het een buitenlands nummer is.",
        "error.invalid_number": "Vul een getal in.",
        "error.invalid_date": "Vul een datum in als JJJJ-MM-DD.",
        "error.invalid_choice": "Kies een van de aangeboden opties.",
        "error.invalid_type": "Deze waarde heeft het verkeerde type.",
        "error.boolean_type": "Stuur true of false.",
        "error.too_short": "Vul minstens {min} tekens in.",
        "error.too_long": "Vul hoogstens {max} tekens in.",
        "error.too_small": "Vul een getal van minstens {min} in.",
        "error.too_large": "Vul een getal van hoogstens {max} in.",
        "error.pattern_mismatch": "Deze waarde heeft niet de verwachte vorm.",
        "error.consent_required": "Uw toestemming is nodig om dit formulier te versturen.",
        "error.unknown_field": "Dit formulier heeft zo’n veld niet.",
        "error.too_many_files": "Voeg ten hoogste {max} bestanden toe.",
        "error.upload_invalid": "Deze upload is ongeldig of verlopen; voeg het bestand opnieuw toe.",
        "error.file_type": "Dit bestandstype wordt niet geaccepteerd; voeg een van deze typen toe: {types}.",
        "error.file_too_large": "Dit bestand is te groot; voeg een bestand van ten hoogste {max} toe.",
    },
    "pt": {
        "submit": "Enviar",
        "required_note": "Os campos marcados com * são obrigatórios.",
        "required": "obrigatório",
        "error_summary": "Corrija o seguinte:",
        "honeypot_label": "Deixe este campo em branco",
        "thanks_title": "Obrigado",
        "thanks_message": "Recebemos a sua mensagem e responderemos em breve.",
        "not_found_title": "Formulário indisponível",
        "not_found_message": "Este formulário não existe ou já não aceita respostas.",
        "rate_limited_title": "Demasiados envios",
        "rate_limited_message": "Aguarde {minutes} minutos e tente novamente.",
        "error.required": "Este campo é obrigatório.",
        "error.invalid_email": "Introduza um endereço de e-mail válido, como nome@exemplo.pt.",
        "error.invalid_phone": "Introduza um número de telefone válido, com o indicativo do país se for estrangeiro.",
        "error.invalid_number": "Introduza um número.",
        "error.invalid_date": "Introduza uma data no formato AAAA-MM-DD.",
        "error.invalid_choice": "Escolha uma das opções apresentadas.",
        "error.invalid_type": "Este valor tem um tipo errado.",
        "error.boolean_type": "Envie true ou false.",
        "error.too_short": "Introduza pelo menos {min} caracteres.",
        "error.too_long": "Introduza no máximo {max} caracteres.",
        "error.too_small": "Introduza um número maior ou igual a {min}.",
        "error.too_large": "Introduza um número menor ou igual a {max}.",
        "error.pattern_mismatch": "Este valor não tem o formato esperado.",
        "error.consent_required": "O seu consentimento é necessário para enviar este formulário.",
        "error.unknown_field": "Este formulário não tem esse campo.",
        "error.too_many_files": "Anexe no máximo {max} ficheiros.",
        "error.upload_invalid": "Este envio é inválido ou expirou; anexe o ficheiro novamente.",
        "error.file_type": "Este tipo de ficheiro não é aceite; anexe um destes tipos: {types}.",
        "error.file_too_large": "Este ficheiro é demasiado grande; anexe um ficheiro de no máximo {max}.",
    },
    "it": {
        "submit": "Invia",
        "required_note": "I campi contrassegnati con * sono obbligatori.",
        "required": "obbligatorio",
        "error_summary": "Correggi quanto segue:",
        "honeypot_label": "Lascia vuoto questo campo",
        "thanks_title": "Grazie",
        "thanks_message": "Abbiamo ricevuto il tuo messaggio e ti risponderemo presto.",
        "not_found_title": "Modulo non disponibile",
        "not_found_message": "Questo modulo non esiste o non accetta più risposte.",
        "rate_limited_title": "Troppi invii",
        "rate_limited_message": "Attendi {minutes} minuti e riprova.",
        "error.required": "Questo campo è obbligatorio.",
        "error.invalid_email": "Inserisci un indirizzo email valido, come nome@esempio.it.",
        "error.invalid_phone": "Inserisci un numero di telefono valido, con il prefisso internazionale se è estero.",
        "error.invalid_number": "Inserisci un numero.",
        "error.invalid_date": "Inserisci una data nel formato AAAA-MM-GG.",
        "error.invalid_choice": "Scegli una delle opzioni proposte.",
        "error.invalid_type": "Questo valore ha un tipo errato.",
        "error.boolean_type": "Invia true o false.",
        "error.too_short": "Inserisci almeno {min} caratteri.",
        "error.too_long": "Inserisci al massimo {max} caratteri.",
        "error.too_small": "Inserisci un numero maggiore o uguale a {min}.",
        "error.too_large": "Inserisci un numero minore o uguale a {max}.",
        "error.pattern_mismatch": "Questo valore non ha il formato previsto.",
        "error.consent_required": "Il tuo consenso è necessario per inviare questo modulo.",
        "error.unknown_field": "Questo modulo non ha questo campo.",
        "error.too_many_files": "Allega al massimo {max} file.",
        "error.upload_invalid": "Questo caricamento non è valido o è scaduto; allega di nuovo il file.",
        "error.file_type": "Questo tipo di file non è accettato; allega uno di questi tipi: {types}.",
        "error.file_too_large": "Questo file è troppo grande; allega un file di al massimo {max}.",
    },
}

SUPPORTED_LANGUAGES: Final[tuple[str, ...]] = tuple(TEXTS)

_LANGUAGE_TAG = re.compile(r"^([a-zA-Z]{2})(?:[-_]([a-zA-Z]{2}))?$")


def normalize_language(value: str) -> str:
    """Return a language tag as "xx" or "xx-YY"; raise ValueError for an unsupported one."""
    match = _LANGUAGE_TAG.match(value.strip())
    if not match or match.group(1).lower() not in TEXTS:
        raise ValueError(
            f"Unsupported language '{value}'; use one of {', '.join(SUPPORTED_LANGUAGES)}, "
            "optionally with a region such as pt-BR."
        )
    primary = match.group(1).lower()
    return f"{primary}-{match.group(2).upper()}" if match.group(2) else primary


def texts_for(language: str) -> dict[str, str]:
    """Return the texts of a form language; English when the language has no texts."""
    primary = language.split("-")[0].lower()
    return TEXTS.get(primary, TEXTS["en"])


def error_message(language: str, code: str, **params: object) -> str:
    texts = texts_for(language)
    template = (
        texts.get(f"error.{code}")
        or TEXTS["en"].get(f"error.{code}")
        or texts["error.invalid_type"]
    )
    return template.format(**params)
