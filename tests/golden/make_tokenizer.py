#!/usr/bin/env python3
"""Builds the fixture tokenizer and its golden data (tests/fixtures/tokenizer/).

Trains a small byte-level BPE with Hugging Face `tokenizers` on text generated here, gives it
exactly DeepSeek-V3's normalizer, pre-tokenizer, decoder and added tokens (placed after the base
vocabulary), then writes, with HF as the reference:
  v3/tokenizer.json / r1/tokenizer.json   V3 added tokens (merges as "a b" strings) / R1 added tokens
                                        (<think>, </think>; merges as ["a", "b"] pairs)
  v3/ r1/ tokenizer_config.json          add_bos_token, bos/eos, the official chat template text
  corpus.json                           >= 2000 strings: ids with specials parsed, ids as plain text
  conversations.json                    >= 50 conversations: apply_chat_template(tokenize=True) ids
Deterministic: fixed seeds, no network.  Needs: pip install 'transformers<5' tokenizers jinja2
usage: python3 tests/golden/make_tokenizer.py [OUT_DIR]
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "fixtures", "tokenizer")
MAX_IDS = 4096

# DeepSeek-V3 pre-tokenizer regexes, as stored (after JSON unescaping) in the hub tokenizer.json.
SPLIT_REGEXES = [
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
TAIL = ["<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜User｜>", "<｜Assistant｜>", "<|EOT|>",
        "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
        "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
        "<｜tool▁output▁end｜>", "<｜tool▁sep｜>"]
NOT_SPECIAL = set(TAIL) - {"<|EOT|>"}


def added_tokens(r1):
    """DeepSeek's 818 added tokens in id order: (content, special)."""
    out = [(BOS, True), (EOS, True), (PAD, True)]
    for i in range(800):
        if r1 and i == 798:
            out.append(("<think>", False))
        elif r1 and i == 799:
            out.append(("</think>", False))
        else:
            out.append((f"<｜place▁holder▁no▁{i}｜>", True))
    out += [(t, t not in NOT_SPECIAL) for t in TAIL]
    return out


# ---- text generation -----------------------------------------------------------------------------
WORDS = ("the of and to in is was for on that with as by at from this be are it an or have not which "
         "model token server request stream sequence batch cache attention expert router layer weight "
         "latent query key value matrix kernel memory thread queue scheduler block prefix decode encode "
         "quickly slowly carefully bright dark river mountain garden window letter number answer question "
         "reasoning think tool function argument result weather city temperature morning evening "
         "international understanding responsibility extraordinary characteristics").split()
NAMES = "Alice Bob Carol Dmitri Eve Fatima Gustav Hiro Ingrid Jamal Kenji Lucia".split()
CJK = "我们你他她的是在有不了人这中大为上个国和地到以说时要就出会可也你对生能而子那得于着下自之年过发后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开但因只从想实日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政美相见被利什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员解水名真论处走义各入几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件计管期市直德资命山金指克许统区保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失转夫令准布始怎呢存未远叫台单影具罗字爱击流备兵连调深商算质团集百需价花党华城石级整府离况亚请技际约示复病息究线似官火断精满支视消越器容照须九增研写称企八功吗包片史委乎查轻易早曾除农找装广显吧阿李标谈吃图念六引历首医局突专费号尽另周较注语仅考落青随选列武红响虽推势参希古众构房半节土投某案黑维革划敌致陈律足态护七兴派孩验责营星够章音跟志底站严巴例防族供效续施留讲型料终答紧黄绝奇察母京段依批群项故按河米围江织害斗双境客纪采举杀攻父苏密低朝友诉止细愿千值仍男钱破网热助倒育属坐帝限船脸职速刻乐否刚威毛状率甚独球般普怕弹校苦创假久错承印晚兰试股拿脑预谁益阳若哪微尼继送急血惊伤素药适波夜省初喜卫源食险待述陆习置居劳财环排福纳欢雷警获模充负云停木游龙树疑层冷洲冲射略范竟句室异激汉村哈策演简卡罪判担州静退既衣您宗积余痛检差富灵协角占配征修皮挥胜降阶审沉坚善妈刘读啊超免压银买皇养伊怀执副乱抗犯追帮宣佛岁航优怪香著田铁控税左右份穿艺背阵草脚概恶块顿敢守酒岛托央户烈洋哥索胡款靠评版宝座释景顾弟登货互付伯慢欧换闻危忙核暗姐介坏讨丽良序升监临亮露永呼味野架域沙掉括舰鱼杂误湾吉减编楚肯测败屋跑梦散温困剑渐封救贵枪缺楼县尚毫移娘朋画班智亦耳恩短掌恐遗固席松秘谢鲁遇康虑幸均销钟诗藏赶剧票损忽巨炮旧端探湖录叶春乡附吸予礼港雨呀板庭妇归睛饭额含顺输摇招婚脱补谓督毒油疗旅泽材灭逐莫笔亡鲜词圣择寻厂睡博勒烟授诺伦岸奥唐卖俄炸载洛健堂旁宫喝借君禁阴园谋宋避抓荣姑孙逃牙束跳顶玉镇雪午练迫爷篇肉嘴馆遍凡础洞卷坦牛宁纸诸训私庄祖丝翻暴森塔默握戏隐熟骨访弱蒙歌店鬼软典欲萨伙遭盘爸扩盖弄雄稳忘亿刺拥徒姆杨齐赛趣曲刀床迎冰虚玩析窗醒妻透购替塞努休虎扬途侵刑绿兄迅套贸毕唯谷轮库迹尤竞街促延震弃甲伟麻川申缓潜闪售灯针哲络抵朱埃抱鼓植纯夏忍页杰筑折郑贝尊吴秀混臣雅振染盛怒舞圆搞狂措姓残秋培迷诚宽宇猛摆梅毁伸摩盟末乃悲拍丁赵硬麦蒋操耶阻订彩抽赞魔纷沿喊违妹浪汇币丰蓝殊献桌啦瓦莱援译夺汽烧距裁偏符勇触课敬哭懂墙袭召罚侠厅拜巧侧韩冒债曼融惯享戴童犹乘挂奖绍厚纵障讯涉彻刊丈爆乌役描洗玛患妙镜唱烦签仙彼弗症仿倾牌陷鸟轰咱菜闭奋庆撤泪茶疾缘播朗杜奶季丹狗尾仪偷奔珠虫驻孔宜艾桥淡翼恨繁寒伴叹旦愈潮粮缩罢聚径恰挑袋灰捕徐珍幕映裂泰隔启尖忠累炎暂估泛荒偿横拒瑞忆孤鼻闹羊呆厉衡胞零穷舍码赫婆魂灾洪腿胆津俗辩胸晓劲贫仁偶辑邦恢赖圈摸仰润堆碰艇稍迟辆废净凶署壁御奉旋冬矿抬蛋晨伏吹鸡倍糊秦盾杯租骑乏隆诊奴摄丧污渡旗甘耐凭扎抢绪粗肩梁幻菲皆碎宙叔岩荡综爬荷悉蒂返井壮薄悄扫敏碍殖详迪矛霍允幅撒剩凯颗骂赏液番箱贴漫酸郎腰舒眉忧浮辛恋餐吓挺励辞艘键伍峰尺昨黎辈贯侦滑券崇扰宪绕趋慈乔阅汗枝拖墨胁插箭腊粉泥氏彭拔骗凤慧媒佩愤扑龄驱惜豪掩兼跃尸肃帕驶堡届欣惠册储飘桑闲惨洁踪勃宾频仇磨递邪撞拟滚奏巡颜剂绩贡疯坡瞧截燃焦殿伪柳锁逼颇昏劝呈搜勤戒驾漂饮曹朵仔柔俩孟腐幼践籍牧凉牲佳娜浓芳稿竹腹跌逻垂遵脉貌柏狱猜怜惑陶兽帐饰贷昌叙躺钢沟寄扶铺邓寿惧询汤盗肥尝匆辉奈扣廷澳嘛董迁凝慰厌脏腾幽怨鞋丢埋泉涌辖躲晋紫艰魏吾慌祝邮吐狠鉴曰械咬邻赤挤弯椅陪割揭韦悟聪雾锋梯猫祥阔誉筹丛牵鸣沈阁穆屈旨袖猎臂蛇贺柱抛鼠瑟戈牢逊迈欺吨琴衰瓶恼燕仲诱狼池疼卢仗冠粒遥吕玄尘冯抚浅敦纠钻晶岂峡苍喷耗凌敲菌赔涂粹扁亏寂煤熊恭湿循暖糖赋抑秩帽哀宿踏烂袁侯抖夹昆肝擦猪炼恒慎搬纽纹玻渔磁铜齿跨押怖漠疲叛遣兹祭醉拳弥斜档稀捷肤疫肿豆削岗晃吞宏癌肚隶履涨耀扭坛拨沃绘伐堪仆郭牺歼墓雇廉契拼惩捉覆刷劫嫌瓜歇雕闷乳串娃缴唤赢莲霸桃妥瘦搭赴岳嘉舱俊址庞耕锐缝悔邀玲惟斥宅添挖呵讼氧浩羽斤酷掠妖祸侍乙妨贪挣汪尿莉悬唇翰仓轨枚盐览傅帅庙芬屏寺胖璃愚滴疏萧姿颤丑劣柯寸扔盯辱匹俱辨饿蜂哦腔郁溃谨糟葛苗肠忌溜鸿爵鹏鹰笼丘桂滋聊挡纲肌茨壳痕碗穴膀卓贤卧膜毅锦欠哩函茫昂薛皱夸豫胃舌剥傲拾窝睁携陵哼棉晴铃填饲渴吻扮逆脆喘罩卜炉柴愉绳胎蓄眠竭喂傻慕浑奸扇柜悦拦诞饱乾泡贼亭夕爹酬儒姻卵氛泄杆挨僧蜜吟猩遂狭肖甜霞驳裕顽於摘矮秒卿畜咽披辅勾盆疆赌塑畏吵囊嗯泊肺骤缠冈羞瞪吊贾漏斑涛悠鹿俘锡卑葬铭滩嫁催璇翅盒蛮矣潘歧赐鲍锅廊拆灌勉盲宰佐啥胀扯禧辽抹筒棋裤唉朴咐孕誓喉妄拘链驰栏逝窃艳臭纤玑棵趁匠盈翁愁瞬婴孝颈倘浙谅蔽畅赠妮莎尉冻跪闯葡後厨鸭颠遮谊圳吁仑辟瘤嫂陀框谭亨钦庸歉芝吼甫衫摊宴嘱衷娇陕矩浦讶耸裸碧摧薪淋耻胶屠鹅饥盼脖虹翠崩账萍逢赚撑翔倡绵猴枯巫昭怔渊凑溪蠢禅阐旺寓藤匪伞碑挪琼脂谎慨菩萄狮掘抄岭晕逮砍掏狄晰罕挽脾舟痴蔡剪脊弓懒叉拐喃僚捐姊骚拓歪粘柄坑陌窄湘兆崖骄刹鞭芒筋聘钩棍嚷腺弦焰耍俯厘愣厦恳饶钉寡憾摔叠惹喻谱愧煌徽溶坠煞巾滥洒堵瓷咒姨棒郡浴媚稣淮哎屁漆淫巢吩撰啸滞玫硕钓蝶膝姚茂躯吏猿寨恕渠戚辰舶颁惶狐讽笨袍嘲啡泼衔倦涵雀旬僵撕肢垄夷逸茅侨舆窑涅蒲谦杭噢弊勋刮郊凄捧浸砖鼎篮蒸饼亩肾陡爪兔殷贞荐哑炭坟眨搏咳拢舅昧擅爽咖搁禄雌哨巩绢螺裹昔轩谬谍龟媳姜瞎冤鸦蓬巷琳栽沾诈斋瞒彪厄咨纺罐桶壤糕颂膨谐垒咕隙辣绑宠嘿兑霉挫稽辐乞纱裙嘻哇绣杖塘衍轴攀膊譬斌祈踢肆坎轿棚泣屡躁邱凰溢椎砸趟帘帆栖窜丸斩堤塌贩厢掀喀乖谜捏阎滨虏匙芦苹卸沼钥株祷剖熙哗劈怯棠胳桩瑰娱娶沫嗓蹲焚淘嫩韵衬匈钧竖峻豹捞菊鄙魄兜哄颖镑屑蚁壶怡渗秃迦旱哟咸焉谴宛稻铸锻伽詹毙恍贬烛骇芯汁桓坊驴朽靖佣汝碌迄冀荆崔雁绅珊榜诵傍彦醇笛禽勿娟瞄幢寇睹贿踩霆呜拱妃蔑谕缚诡篷淹腕煮倩卒勘馨逗甸贱炒灿敞蜡囚栗辜垫妒魁谣寞蜀甩涯枕丐泳奎泌逾叮黛燥掷藉枢憎鲸弘倚侮藩拂鹤蚀浆芙垃烤晒霜剿蕴圾绸屿氢驼妆捆铅逛淑榴丙痒钞蹄犬躬昼藻蛛褐颊奠募耽蹈陋侣魅岚侄虐堕陛莹荫狡阀绞膏垮茎缅喇绒搅凳梭丫姬诏钮棺耿缔懈嫉灶匀嗣鸽澡凿纬沸畴刃遏烁嗅叭熬瞥骸奢拙栋毯桐砂莽泻坪梳杉晤稚蔬蝇捣顷麽尴镖诧尬硫嚼羡沦沪旷彬芽狸冥碳咧惕暑咯萝汹腥窥俺潭崎麟捡拯厥澄萎哉涡滔暇溯鳞酿茵愕瞅暮衙诫斧兮焕棕佑嘶妓喧蓉删樱伺嗡娥梢坝蚕敷澜杏绥冶庇挠搂倏聂婉噪稼鳍菱盏匿吱寝揽髓秉哺矢啪帜邵嗽挟缸揉腻驯缆晌瘫贮觅朦僻隋蔓咋嵌虔畔琐碟涩胧嘟蹦冢浏裔襟叨诀旭虾簿啤擒枣嘎苑牟呕骆凸熄兀喔裳凹赎屯膛浇灼裘砰棘橡碱聋姥瑜毋娅沮萌俏黯撇粟粪尹苟癫蚂禹廖俭帖煎缕窦簇棱叩呐瑶墅莺烫蛙歹伶葱哮眩坤廓讳啼乍瓣矫跋枉梗厕琢讥釉窟敛轼庐胚呻绰扼懿炯竿慷虞锤栓桨蚊磅孽惭戳禀鄂馈垣溅咚钙礁彰豁眯磷雯墟迂瞻颅琉悼蝴拣渺眷悯汰慑婶斐嘘镶炕宦趴绷窘襄珀嚣拚酌浊毓撼嗜扛峭磕翘槽淌栅颓熏瑛颐忖".replace("", " ").split()
CJK_TEXT = "".join(CJK)
KANA = "ひらがなカタカナのことばをかいてみますテストです"
SAMPLES = [
    "مرحبا بالعالم، هذا نص عربي للاختبار", "हिन्दी में यह एक परीक्षण वाक्य है।", "Ελληνικά κείμενα με τόνους",
    "Русский текст для проверки токенизатора", "한국어 문장도 포함합니다", "ไทยภาษาไม่มีช่องว่าง",
    "עברית כתובה מימין לשמאל", "Tiếng Việt có dấu", "naïve café résumé coöperate", "e\u0301 a\u0308 n\u0303 combining",
    "👍🏽 👩‍👩‍👧‍👦 🏳️‍🌈 👨🏿‍💻 ❤️‍🔥 🇯🇵🇫🇷", "∑∫√∞≈≠≤≥ ±×÷ →←↑↓ ©®™ €£¥₹", "Ｆｕｌｌｗｉｄｔｈ　ｓｐａｃｅ！",
    "\u00a0nbsp\u2003emsp\u3000ideo\u200bzw\u2028ls\u2029ps\u0085nel\u180emvs", "tab\there\t\ttwo", "ℌ𝔢𝔩𝔩𝔬 𝕎𝕠𝕣𝕝𝕕",
    "½ ¾ ² ³ ① ② Ⅻ ٣٤٥ ४५६ 十二", "'s 't 're 've 'm 'll 'd", "ﬁ ﬂ ǅ ǈ",
]
SPECIAL_SPELLINGS = [BOS, EOS, PAD, "<｜User｜>", "<｜Assistant｜>", "<|EOT|>", "<｜tool▁sep｜>", "<｜fim▁hole｜>",
                     "<｜place▁holder▁no▁7｜>", "<｜place▁holder▁no▁798｜>", "<think>", "</think>", "<｜User", "<|EOT|",
                     "<｜end▁of▁sentence｜", "<<｜User｜>>", "<｜User｜><｜Assistant｜>"]


def prose(rng, n):
    words = []
    for i in range(n):
        w = rng.choice(WORDS)
        if rng.random() < 0.1:
            w = w.capitalize()
        if rng.random() < 0.05:
            w = rng.choice(NAMES)
        words.append(w)
        if rng.random() < 0.08:
            words[-1] += rng.choice([",", ".", ";", ":", "!", "?", "'s", "...", ")"])
    return " ".join(words)


def code(rng):
    name = rng.choice(["main", "encode", "decode", "sched_step", "kv_alloc", "foo_bar"])
    body = []
    for i in range(rng.randint(1, 6)):
        ind = rng.choice(["\t", "    ", "        ", "\t\t", "  "])
        body.append(f"{ind}int x{i} = {rng.randint(0, 99999)} + y[{i}]; // {prose(rng, 3)}")
    sep = rng.choice(["\n", "\r\n", "\n\n", "\n\n\n"])
    return f"static int {name}(const char *s, size_t n)\n{{{sep}" + sep.join(body) + f"{sep}    return 0;\n}}\n"


def numbers(rng):
    parts = [str(rng.randint(0, 10 ** rng.randint(1, 12))),
             f"{rng.randint(1900, 2100)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
             f"{rng.random() * 1000:.4f}", f"{rng.randint(0, 23)}:{rng.randint(0, 59):02d}",
             f"${rng.randint(1, 9999)},{rng.randint(100, 999)}.{rng.randint(0, 99):02d}", "1e-9", "0x7fff",
             f"v{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 99)}", "3.14159265358979"]
    return " ".join(rng.sample(parts, rng.randint(1, len(parts))))


def cjk(rng):
    s = "".join(rng.choice(CJK) for _ in range(rng.randint(2, 30)))
    return rng.choice([s, s + "，" + KANA, "日本語の" + KANA + s, s + "。" + prose(rng, 3), "中文" + str(rng.randint(0, 999)) + s])


def spaces(rng):
    return rng.choice([" " * rng.randint(1, 40) + "x", "a" + " " * rng.randint(2, 30) + "b", "\n" * rng.randint(1, 9),
                       "line\n \n  \n\tend", " \t \n", "x  \n\n  y", "trailing   ", "   ", "\r\n\r\n", "a\u3000\u3000b"])


def long_word(rng):
    n = rng.randint(50, 3000)
    return rng.choice(["a" * n, "ab" * (n // 2), "".join(rng.choice("abcdefghij") for _ in range(n)),
                       "x" + "é" * (n // 4), "9" * n, "-" * n, "ん" * (n // 8)])


def special_text(rng):
    s = rng.choice(SPECIAL_SPELLINGS)
    return rng.choice([s, prose(rng, 3) + s + prose(rng, 2), f"Hello {s} world", s + s, " " + s + " ", s + "\n" + code(rng)])


def mixed(rng):
    pieces = [prose(rng, rng.randint(1, 12)), rng.choice(SAMPLES), numbers(rng), cjk(rng), spaces(rng)]
    rng.shuffle(pieces)
    return rng.choice(["", " ", "\n"]).join(pieces[: rng.randint(2, 5)])


GENERATORS = [(prose, 6), (code, 3), (numbers, 2), (cjk, 2), (spaces, 1), (long_word, 1), (special_text, 2), (mixed, 4)]


def gen_text(rng):
    total = sum(w for _, w in GENERATORS)
    r = rng.uniform(0, total)
    for fn, w in GENERATORS:
        r -= w
        if r <= 0:
            break
    return fn(rng) if fn is not prose else prose(rng, rng.randint(1, 60))


def corpus_strings():
    rng = random.Random(20250101)
    out = list(SAMPLES) + SPECIAL_SPELLINGS + ["", " ", "\n", "a", "0", "\t"]
    while len(out) < 2100:
        out.append(gen_text(rng))
    return out


def training_text():
    rng = random.Random(7)
    return [gen_text(rng) for _ in range(6000)] + SAMPLES * 20 + [CJK_TEXT, KANA * 5]


# ---- tokenizer ---------------------------------------------------------------------------------------
def deepseek_pre_tokenizer():
    splits = [pre_tokenizers.Split(Regex(r), behavior="isolated", invert=False) for r in SPLIT_REGEXES]
    return pre_tokenizers.Sequence(splits + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def train():
    n_added = len(added_tokens(False))
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = deepseek_pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=MAX_IDS - n_added, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_text(), trainer)
    return tok


def build(base, r1):
    """Returns (Tokenizer, tokenizer.json dict) with DeepSeek's added tokens after the base vocab."""
    tok = Tokenizer.from_str(base.to_str())
    for content, special in added_tokens(r1):
        tok.add_tokens([AddedToken(content, single_word=False, lstrip=False, rstrip=False, normalized=True,
                                   special=special)])
    data = json.loads(tok.to_str())
    assert len(data["model"]["vocab"]) + len(data["added_tokens"]) <= MAX_IDS
    merges = data["model"]["merges"]
    if not r1:  # the V3 hub file stores merges as "a b" strings
        data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in merges]
    bos_id = next(t["id"] for t in data["added_tokens"] if t["content"] == BOS)
    data["post_processor"] = {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                       {"SpecialToken": {"id": BOS, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {BOS: {"id": BOS, "ids": [bos_id], "tokens": [BOS]}}}
    return Tokenizer.from_str(json.dumps(data)), data


def config(template, tok_data):
    decoder = {str(t["id"]): {k: t[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
               for t in tok_data["added_tokens"]}
    return {"add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": decoder,
            "bos_token": {"__type": "AddedToken", "content": BOS, "lstrip": False, "normalized": True,
                          "rstrip": False, "single_word": False},
            "clean_up_tokenization_spaces": False,
            "eos_token": {"__type": "AddedToken", "content": EOS, "lstrip": False, "normalized": True,
                          "rstrip": False, "single_word": False},
            "legacy": True, "model_max_length": 16384, "pad_token": EOS, "sp_model_kwargs": {},
            "unk_token": None, "tokenizer_class": "LlamaTokenizerFast", "chat_template": template}


def plain_ids(tok, text):
    """Ids of text with no added-token matching: pre-tokenizer + BPE model only."""
    ids = []
    for piece, _ in tok.pre_tokenizer.pre_tokenize_str(text):
        ids += [t.id for t in tok.model.tokenize(piece)]
    return ids


# ---- conversations -----------------------------------------------------------------------------------
def conv_text(rng):
    return rng.choice([prose(rng, rng.randint(1, 25)), cjk(rng), numbers(rng), rng.choice(SAMPLES),
                       "Hello", "What is 2+2?", code(rng), "  spaced  out  ", "line one\nline two\n", ""])


def tool_call(rng):
    name = rng.choice(["get_weather", "search", "calc", "lookup_user"])
    args = json.dumps({"city": rng.choice(["Paris", "東京", "Zürich"]), "n": rng.randint(0, 99)},
                      ensure_ascii=rng.random() < 0.5)
    return {"type": "function", "function": {"name": name, "arguments": args}}


def assistant(rng, r1):
    kind = rng.random()
    if kind < 0.25:
        calls = [tool_call(rng) for _ in range(rng.randint(1, 3))]
        content = None if (not r1 or rng.random() < 0.5) else conv_text(rng)
        return {"role": "assistant", "content": content, "tool_calls": calls}
    text = conv_text(rng)
    if r1 and rng.random() < 0.5:
        text = rng.choice(["<think>\n", "<think>", ""]) + prose(rng, 6) + "</think>" + rng.choice(["\n\n", "", " "]) + text
    return {"role": "assistant", "content": text}


def conversation(rng, r1):
    msgs = []
    for _ in range(rng.randint(0, 2)):
        msgs.append({"role": "system", "content": conv_text(rng)})
    for turn in range(rng.randint(1, 4)):
        msgs.append({"role": "user", "content": conv_text(rng)})
        if rng.random() < 0.2 and turn:
            msgs.insert(rng.randint(0, len(msgs)), {"role": "system", "content": conv_text(rng)})
        a = assistant(rng, r1)
        msgs.append(a)
        if "tool_calls" in a:
            for _ in range(rng.randint(1, len(a["tool_calls"]))):
                msgs.append({"role": "tool", "content": conv_text(rng)})
            if rng.random() < 0.7:
                msgs.append({"role": "assistant", "content": conv_text(rng)})
    if rng.random() < 0.6 and msgs[-1]["role"] == "assistant":
        msgs.pop()
    return msgs


def chat_ids(hf, msgs, gen):
    out = hf.apply_chat_template(msgs, tokenize=True, add_generation_prompt=gen)
    if hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def conversations(dirname):
    import tempfile

    import transformers
    from transformers import AutoTokenizer
    # transformers 5.x deletes `content: None` before rendering, which makes the official V3 template
    # fail on tool calls; the fixtures were made with transformers 4.57.6 and tokenizers 0.22.2.
    assert int(transformers.__version__.split(".")[0]) < 5, "use transformers<5 (see the comment above)"
    rng = random.Random(99)
    out = []
    for variant, cfg, r1 in (("v3", "v3/tokenizer_config.json", False), ("r1", "r1/tokenizer_config.json", True)):
        tmp = tempfile.mkdtemp()
        for src, dst in ((("r1/tokenizer.json" if r1 else "v3/tokenizer.json"), "tokenizer.json"), (cfg, "tokenizer_config.json")):
            with open(os.path.join(dirname, src), encoding="utf-8") as f, open(os.path.join(tmp, dst), "w", encoding="utf-8") as g:
                g.write(f.read())
        hf = AutoTokenizer.from_pretrained(tmp)
        raw = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
        assert hf.encode("Hello <｜User｜> x") == [raw.token_to_id(BOS)] + raw.encode("Hello <｜User｜> x", add_special_tokens=False).ids
        for i in range(40):
            msgs = conversation(rng, r1)
            gen = rng.random() < 0.7
            out.append({"template": variant, "add_generation_prompt": gen, "messages": msgs, "ids": chat_ids(hf, msgs, gen)})
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)  # (no shutil.rmtree: nothing else lives there)
    return out


def write_json(name, obj, indent=None):
    with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent, separators=(",", ":") if indent is None else None)
        f.write("\n")


def main():
    for sub in ("v3", "r1"):
        os.makedirs(os.path.join(OUT, sub), exist_ok=True)
    base = train()
    templates = {}
    for v in ("v3", "r1"):
        with open(os.path.join(OUT, f"template_{v}.jinja"), encoding="utf-8") as f:
            templates[v] = f.read()
    tok_v3, data_v3 = build(base, False)
    tok_r1, data_r1 = build(base, True)
    write_json("v3/tokenizer.json", data_v3, indent=1)
    write_json("r1/tokenizer.json", data_r1, indent=1)
    write_json("v3/tokenizer_config.json", config(templates["v3"], data_v3), indent=2)
    write_json("r1/tokenizer_config.json", config(templates["r1"], data_r1), indent=2)

    corpus = []
    for text in corpus_strings():
        enc = tok_v3.encode(text, add_special_tokens=False).ids
        entry = {"text": text, "ids": enc, "plain": plain_ids(tok_v3, text)}
        skip = tok_v3.decode(enc, skip_special_tokens=True)
        if skip != text:
            entry["decoded_skip"] = skip
        assert tok_v3.decode(enc, skip_special_tokens=False) == text
        corpus.append(entry)
    write_json("corpus.json", corpus)
    write_json("conversations.json", conversations(OUT))
    print(f"wrote {OUT}: base vocab {base.get_vocab_size()}, {len(corpus)} corpus strings")


if __name__ == "__main__":
    main()
