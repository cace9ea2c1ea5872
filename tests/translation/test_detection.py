"""Offline language detection of clinical sentences: at least 90% right in each language."""

from __future__ import annotations

import pytest

from telehealth.i18n.detection import detect_language

SENTENCES = {
    "fr": [
        "Le patient présente une fièvre à 39 °C depuis trois jours avec des frissons.",
        "Enfant de 4 ans, toux productive et difficulté respiratoire depuis hier soir.",
        "La tension artérielle est à 160/100 malgré le traitement.",
        "Douleur abdominale en fosse iliaque droite, défense à la palpation.",
        "Nous n'avons pas de radiographie ; la saturation est à 91 % à l'air ambiant.",
        "Faut-il transférer la patiente vers l'hôpital provincial ?",
        "Éruption maculopapuleuse sur le tronc, pas de démangeaisons.",
        "Le test rapide du paludisme est positif, l'hémoglobine est à 7 g/dl.",
        "Femme enceinte de 32 semaines avec des céphalées et des œdèmes des membres.",
        "Merci pour votre réponse, nous avons commencé l'amoxicilline ce matin.",
        "Plaie infectée au pied chez un diabétique, avec une odeur fétide.",
        "Les convulsions ont cessé après le diazépam mais l'enfant reste somnolent.",
    ],
    "en": [
        "The patient has had a fever of 39 degrees for three days with chills.",
        "Four-year-old child with a productive cough and difficulty breathing since last night.",
        "Blood pressure remains 160/100 despite treatment.",
        "Right lower quadrant abdominal pain with guarding on palpation.",
        "We have no X-ray; oxygen saturation is 91% on room air.",
        "Should we transfer her to the provincial hospital?",
        "Maculopapular rash on the trunk, not itchy.",
        "The rapid malaria test is positive and haemoglobin is 7 g/dl.",
        "Pregnant woman at 32 weeks with headaches and swollen legs.",
        "Thank you for your answer, we started amoxicillin this morning.",
        "Infected foot wound in a diabetic patient, with a foul smell.",
        "The seizures stopped after diazepam but the child is still drowsy.",
    ],
    "es": [
        "El paciente tiene fiebre de 39 grados desde hace tres días con escalofríos.",
        "Niño de 4 años con tos productiva y dificultad para respirar desde anoche.",
        "La presión arterial sigue en 160/100 a pesar del tratamiento.",
        "Dolor abdominal en fosa ilíaca derecha con defensa a la palpación.",
        "No tenemos radiografía; la saturación es de 91 % con aire ambiente.",
        "¿Debemos trasladar a la paciente al hospital provincial?",
        "Exantema maculopapular en el tronco, sin picazón.",
        "La prueba rápida de malaria es positiva y la hemoglobina está en 7 g/dl.",
        "Mujer embarazada de 32 semanas con dolores de cabeza e hinchazón de las piernas.",
        "Gracias por su respuesta, empezamos la amoxicilina esta mañana.",
        "Herida infectada en el pie de un paciente diabético, con mal olor.",
        "Las convulsiones cedieron tras el diazepam pero el niño sigue somnoliento.",
    ],
    "pt": [
        "O doente tem febre de 39 graus há três dias, com calafrios.",
        "Criança de 4 anos com tosse produtiva e dificuldade em respirar desde ontem à noite.",
        "A tensão arterial continua em 160/100 apesar do tratamento.",
        "Dor abdominal na fossa ilíaca direita com defesa à palpação.",
        "Não temos radiografia; a saturação é de 91 % em ar ambiente.",
        "Devemos transferir a doente para o hospital provincial?",
        "Erupção maculopapular no tronco, sem comichão.",
        "O teste rápido da malária é positivo e a hemoglobina está em 7 g/dl.",
        "Grávida de 32 semanas com dores de cabeça e inchaço nas pernas.",
        "Obrigado pela resposta, começámos a amoxicilina esta manhã.",
        "Ferida infetada no pé de um doente diabético, com cheiro fétido.",
        "As convulsões pararam depois do diazepam mas a criança continua sonolenta.",
    ],
    "sw": [
        "Mgonjwa ana homa ya nyuzi 39 kwa siku tatu pamoja na kutetemeka.",
        "Mtoto wa miaka minne ana kikohozi chenye makohozi na shida ya kupumua tangu jana usiku.",
        "Shinikizo la damu bado ni 160/100 licha ya matibabu.",
        "Maumivu ya tumbo upande wa kulia chini, tumbo linakaza likiguswa.",
        "Hatuna mashine ya eksirei; kiwango cha oksijeni ni asilimia 91.",
        "Je, tumhamishe mgonjwa kwenda hospitali ya mkoa?",
        "Vipele vimejitokeza kifuani na mgongoni, havimwashi.",
        "Kipimo cha haraka cha malaria kinaonyesha ana malaria na damu yake iko chini sana.",
        "Mama mjamzito wa wiki thelathini na mbili ana maumivu ya kichwa na miguu imevimba.",
        "Asante kwa jibu lako, tumeanza kumpa dawa asubuhi ya leo.",
        "Mgonjwa wa kisukari ana kidonda mguuni kinachotoa harufu mbaya.",
        "Degedege limekoma baada ya dawa lakini mtoto bado ana usingizi mwingi.",
    ],
    "ar": [
        "يعاني المريض من حمى بدرجة 39 منذ ثلاثة أيام مع قشعريرة.",
        "طفل عمره أربع سنوات يعاني من سعال مع بلغم وصعوبة في التنفس منذ ليلة أمس.",
        "ضغط الدم ما زال 160/100 رغم العلاج.",
        "ألم في البطن في الجهة اليمنى السفلية مع تصلب عند الجس.",
        "لا يوجد لدينا جهاز أشعة، وتشبع الأكسجين 91 بالمئة.",
        "هل يجب أن ننقل المريضة إلى المستشفى الإقليمي؟",
        "طفح جلدي على الجذع من دون حكة.",
        "اختبار الملاريا السريع إيجابي والهيموغلوبين 7 غرام.",
        "امرأة حامل في الأسبوع الثاني والثلاثين تشكو من صداع وتورم في الساقين.",
        "شكرًا على إجابتك، بدأنا إعطاء الأموكسيسيلين هذا الصباح.",
        "جرح ملتهب في قدم مريض سكري مع رائحة كريهة.",
        "توقفت النوبات بعد الديازيبام لكن الطفل ما زال نعسانًا.",
    ],
}


def test_the_set_is_big_enough():
    assert all(len(sentences) >= 10 for sentences in SENTENCES.values())
    assert set(SENTENCES) == {"fr", "en", "es", "pt", "sw", "ar"}


@pytest.mark.parametrize("language", sorted(SENTENCES))
def test_detection_accuracy(language):
    sentences = SENTENCES[language]
    wrong = [(s, detect_language(s)) for s in sentences if detect_language(s) != language]
    accuracy = 1 - len(wrong) / len(sentences)
    assert accuracy >= 0.9, wrong


def test_overall_accuracy():
    results = [detect_language(s) == lang for lang, ss in SENTENCES.items() for s in ss]
    assert sum(results) / len(results) >= 0.95
